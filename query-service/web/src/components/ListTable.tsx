import { ReactNode } from 'react';

/** A table's header row: one column header a column, in order. */
export function ColumnHeads({ columns }: { columns: ReactNode[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column, i) => (
          <th scope="col" key={i}>
            {column}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/**
 * A list table inside its sideways-scrolling wrapper; `children` are the body's rows. The
 * caption is for screen readers only unless `captionShown`; `busy` marks the rows as being read
 * again.
 */
export function ListTable(props: { caption: ReactNode; captionShown?: boolean; columns: ReactNode[]; busy?: boolean; children: ReactNode }) {
  return (
    <div className="table-wrap">
      <table className="list" aria-busy={props.busy}>
        <caption className={props.captionShown ? undefined : 'sr-only'}>{props.caption}</caption>
        <ColumnHeads columns={props.columns} />
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

/** The header of a column of row actions (buttons): named for screen readers only. */
export const ACTIONS = <span className="sr-only">Actions</span>;
