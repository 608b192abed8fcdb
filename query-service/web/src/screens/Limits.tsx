import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { FormEvent, useState } from 'react';
import { command, unwrap } from '../api/client';
import type { LimitOption, LimitsView } from '../api/types';
import { ErrorNotice } from '../components/ErrorNotice';
import { ListTable } from '../components/ListTable';
import { formatDateTime } from '../lib/format';

/** The services 1NCE limits per month, the field of each in `PUT /limits`, and their words. */
const SERVICES = [
  { service: 'data', field: 'data_limit_id', label: 'Data' },
  { service: 'smsMT', field: 'sms_mt_limit_id', label: 'SMS to the devices (MT)' },
  { service: 'smsMO', field: 'sms_mo_limit_id', label: 'SMS from the devices (MO)' },
] as const;
type Field = (typeof SERVICES)[number]['field'];

interface LastChange {
  requested_at: string;
  limits: Partial<Record<Field, number | null>>;
  state: 'pending' | 'completed' | 'failed' | 'unknown';
  reason?: string | null;
  settled_at?: string | null;
}

const STATE: Record<LastChange['state'], string> = {
  pending: 'waiting for 1NCE',
  completed: 'done',
  failed: 'failed',
  unknown: 'outcome unknown',
};

const describe = (option: LimitOption | undefined) =>
  option ? `${option.limit ?? '?'} ${option.unit ?? ''}`.trim() + ` (id ${option.id})` : '—';

/**
 * The account's self-set monthly limits at 1NCE (data, MT-SMS, MO-SMS; one setting for every
 * SIM): what 1NCE has, what it offers, and a change carried out at 1NCE like the SIM controls.
 */
export function Limits() {
  const queryClient = useQueryClient();
  const limits = useQuery({
    queryKey: ['limits'],
    queryFn: () => unwrap(command.GET('/api/v1/limits')),
    refetchInterval: (q) => ((q.state.data?.last_change as LastChange | null | undefined)?.state === 'pending' ? 2_000 : false),
  });
  const [chosen, setChosen] = useState<Partial<Record<Field, string>>>({});
  const change = useMutation({
    mutationFn: (body: Partial<Record<Field, number>>) => unwrap(command.PUT('/api/v1/limits', { body })),
    onSuccess: async () => {
      setChosen({});
      await queryClient.invalidateQueries({ queryKey: ['limits'] });
    },
  });
  const view: LimitsView | undefined = limits.data;
  const last = (view?.last_change ?? null) as LastChange | null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: Partial<Record<Field, number>> = {};
    for (const { field } of SERVICES) if (chosen[field]) body[field] = Number(chosen[field]);
    change.mutate(body);
  };
  const nothingChosen = SERVICES.every(({ field }) => !chosen[field]);

  return (
    <>
      <h1>Monthly limits</h1>
      <p className="muted">
        Self-set limits at 1NCE for every SIM of the account: traffic stops for the rest of the month once a SIM reaches one.
      </p>
      {limits.error && <ErrorNotice error={limits.error} what="load the limits" />}
      {limits.isPending && <p className="progress">Loading…</p>}
      {view && (
        <>
          <ListTable caption="The limits per service" captionShown columns={['Service', 'At 1NCE now', 'Confirmed through the platform']}>
            {SERVICES.map(({ service, field, label }) => {
              const confirmed = (view.confirmed as Partial<Record<Field, number | null>>)[field];
              return (
                <tr key={service} data-service={service}>
                  <td>{label}</td>
                  <td data-testid={`limit-now-${service}`}>{describe(view.at_provider.find((o) => o.service === service))}</td>
                  <td>{confirmed == null ? '—' : describe(view.selectable.find((o) => o.service === service && o.id === confirmed) ?? { id: confirmed, service })}</td>
                </tr>
              );
            })}
          </ListTable>
          <p className="small muted">As the connector last read them from 1NCE: {view.read_at ? formatDateTime(view.read_at) : 'not yet'}.</p>
          <h2>Last change</h2>
          {last ? (
            <p data-testid="limits-last-change">
              <span className={`outcome ${last.state}`}>{STATE[last.state]}</span>, asked {formatDateTime(last.requested_at)}
              {last.reason ? ` · 1NCE: ${last.reason}` : ''}
            </p>
          ) : (
            <p className="muted">None through the platform yet.</p>
          )}
          <h2>Change</h2>
          <form className="edit-form" onSubmit={submit} aria-label="Change the monthly limits">
            {SERVICES.map(({ service, field, label }) => (
              <div key={service} className="field">
                <label htmlFor={`limit-${service}`}>{label}</label>
                <select id={`limit-${service}`} value={chosen[field] ?? ''} onChange={(e) => setChosen({ ...chosen, [field]: e.target.value })}>
                  <option value="">keep as it is</option>
                  {view.selectable
                    .filter((o) => o.service === service)
                    .map((o) => (
                      <option key={o.id} value={String(o.id)}>
                        {describe(o)}
                      </option>
                    ))}
                </select>
              </div>
            ))}
            <div className="actions" style={{ justifyContent: 'flex-start' }}>
              <button type="submit" className="primary" disabled={nothingChosen || change.isPending || last?.state === 'pending'}>
                {change.isPending ? 'Sending…' : 'Ask 1NCE to change them'}
              </button>
            </div>
            {change.error && <ErrorNotice error={change.error} what="change the limits" />}
          </form>
        </>
      )}
    </>
  );
}
