import { FormEvent, useState } from 'react';
import { command, unwrap } from '../../api/client';
import { ErrorNotice } from '../../components/ErrorNotice';
import { countSms, encodingUnit, MAX_PARTS } from '../../lib/sms';
import { useSimCommand } from './common';

/** Writes an SMS to the device, counting characters and parts as the domain will. */
export function SmsComposer({ iccid }: { iccid: string }) {
  const [text, setText] = useState('');
  const [touched, setTouched] = useState(false);
  const send = useSimCommand(iccid, (payload: string) => unwrap(command.POST('/api/v1/sims/{iccid}/sms', { params: { path: { iccid } }, body: { payload } })));
  const count = countSms(text);
  const tooLong = count.error === 'SMS_PAYLOAD_TOO_LONG';
  const showError = tooLong || (touched && count.error === 'SMS_PAYLOAD_EMPTY');

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setTouched(true);
    if (count.error) return;
    send.mutate(text, { onSuccess: () => setText('') });
  };

  return (
    <form className="composer" onSubmit={submit} aria-label="Send an SMS">
      <label>
        Message to the device
        <textarea
          value={text}
          onChange={(e) => setText(e.target.value)}
          aria-invalid={showError}
          aria-describedby="sms-count"
          disabled={send.isPending}
        />
      </label>
      <p id="sms-count" className={showError ? 'field-error' : 'muted small'} aria-live="polite" data-testid="sms-count">
        {count.error === 'SMS_PAYLOAD_EMPTY'
          ? touched
            ? 'Write a message first.'
            : `Up to ${MAX_PARTS} parts: 160 GSM-7 characters in one, 153 per part when longer (70 and 67 in UCS-2).`
          : tooLong
            ? `Too long: ${count.length} ${encodingUnit(count.encoding)} need ${count.parts} parts; at most ${count.limit} fit in ${MAX_PARTS} parts.`
            : `${count.length} ${encodingUnit(count.encoding)} · ${count.parts} part${count.parts > 1 ? 's' : ''} · ${count.remainingInPart} left in ${count.parts > 1 ? 'these parts' : 'this part'}`}
      </p>
      <div className="actions" style={{ justifyContent: 'flex-start' }}>
        <button type="submit" className="primary" disabled={send.isPending || tooLong}>
          {send.isPending ? 'Sending…' : 'Send SMS'}
        </button>
        {send.isPending && <span className="progress">Waiting for the read model…</span>}
      </div>
      {send.error && <ErrorNotice error={send.error} what="send the SMS" />}
    </form>
  );
}
