import type { SmsRow } from '../../api/types';
import { roleAtLeast } from '../../api/useSession';
import { ErrorNotice } from '../../components/ErrorNotice';
import { formatDateTime } from '../../lib/format';
import { SmsComposer } from './SmsComposer';
import { SMS_SHOWN, useSms } from './queries';

const STATUS: Record<string, string> = {
  requested: 'requested',
  submitted: 'submitted to 1NCE',
  delivered: 'delivered',
  failed: 'failed',
  received: 'received',
  unknown: 'outcome unknown',
};
const OUTCOME_CLASS: Record<string, string> = { delivered: 'completed', received: 'completed', failed: 'failed', unknown: 'unknown' };

const sentAt = (m: SmsRow) => m.requested_at ?? m.received_at ?? m.updated_at;

/** Messages to (MT) and from (MO) the device, oldest at the top, and the composer. */
export function SmsThread({ iccid, live }: { iccid: string; live: boolean }) {
  const sms = useSms(iccid);
  // The API lists the newest first; a thread reads downwards.
  const messages = [...(sms.data ?? [])].reverse();
  return (
    <section className="card sim-section" aria-labelledby="sms-title">
      <h2 id="sms-title">SMS</h2>
      {sms.error && <ErrorNotice error={sms.error} what="load the messages" />}
      {sms.isPending && <p className="progress">Loading…</p>}
      {sms.data?.length === 0 && <p className="muted">No messages yet.</p>}
      {messages.length >= SMS_SHOWN && <p className="muted small">The last {SMS_SHOWN} messages.</p>}
      <ol className="thread" aria-label="Messages" data-testid="sms-thread" tabIndex={messages.length ? 0 : undefined}>
        {messages.map((m) => (
          <li key={m.message_id} className={m.direction}>
            <p className="payload">{m.payload}</p>
            <div className="small muted">
              <span className="sr-only">{m.direction === 'MT' ? 'To the device' : 'From the device'}, </span>
              {m.direction} · {formatDateTime(sentAt(m))} ·{' '}
              <span className={`outcome ${OUTCOME_CLASS[m.status] ?? 'pending'}`} data-testid="sms-status">
                {STATUS[m.status] ?? m.status}
              </span>
              {m.parts ? ` · ${m.parts} part${m.parts > 1 ? 's' : ''}` : ''}
              {m.encoding ? `, ${m.encoding === 'ucs2' ? 'UCS-2' : 'GSM-7'}` : ''}
              {m.source_address ? ` · from ${m.source_address}` : ''}
            </div>
            {m.failure_reason && <div className="small">Reason: {m.failure_reason}</div>}
          </li>
        ))}
      </ol>
      {live && roleAtLeast('operator') && <SmsComposer iccid={iccid} />}
    </section>
  );
}
