import { Dispatch, ReactNode, SetStateAction } from 'react';

/** Numbered pages (from 1) of a list of `total` rows, `pageSize` a page: Previous, "Page n of m", Next. */
export function PageSteps(props: { page: number; total: number | undefined; pageSize: number; onPage: Dispatch<SetStateAction<number>> }) {
  const { page, onPage } = props;
  const pages = Math.max(1, Math.ceil((props.total ?? 0) / props.pageSize));
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={page === 1} onClick={() => onPage((p) => p - 1)}>
        Previous
      </button>
      <span>
        Page {page} of {pages}
      </span>
      <button type="button" disabled={page >= pages} onClick={() => onPage((p) => p + 1)}>
        Next
      </button>
    </nav>
  );
}

/**
 * Previous and Next through pages read by cursor (`children` between the two). `cursors` holds
 * the cursor of each page seen so far, the first page's first; `next` is the following page's
 * (none on the last page); `stale` while the rows shown are still the previous page's, so Next
 * cannot skip a page.
 */
export function CursorSteps<C>(props: { cursors: C[]; onCursors: Dispatch<SetStateAction<C[]>>; next: C | null | undefined; stale: boolean; children?: ReactNode }) {
  const { cursors, onCursors, next } = props;
  return (
    <>
      <button type="button" disabled={cursors.length === 1} onClick={() => onCursors((c) => c.slice(0, -1))}>
        Previous
      </button>
      {props.children}
      <button type="button" disabled={!next || props.stale} onClick={() => next && onCursors((c) => [...c, next])}>
        Next
      </button>
    </>
  );
}
