import { describe, expect, it } from 'vitest';
import { HistoryEvent, requestsOf } from './requests';

const ICCID = '8988228066600000001';
let position = 0;
function event(event_type: string, payload: Record<string, unknown>, aggregate_id = ICCID): HistoryEvent {
  position += 1;
  return { position, aggregate_id, event_type, recorded_at: `2025-01-01T00:00:${String(position).padStart(2, '0')}Z`, metadata: { actor: 'ops' }, payload };
}

describe('requestsOf', () => {
  it('pairs each request with its latest outcome, newest first', () => {
    const events = [
      event('SimRegistered', { iccid: ICCID }),
      event('ActivationRequested', { request_id: 'a1' }),
      event('ActivationCompleted', { request_id: 'a1' }),
      event('SuspensionRequested', { request_id: 's1' }),
      event('SuspensionFailed', { request_id: 's1', reason: 'provider said no' }),
      event('TopUpRequested', { request_id: 't1', kind: 'sms' }, `${ICCID}:sms`),
      event('TopUpOutcomeUnknown', { request_id: 't1', reason: 'timeout' }, `${ICCID}:sms`),
      event('ActivationRequested', { request_id: 'a2' }),
    ];
    const requests = requestsOf(events);
    expect(requests.map((r) => [r.id, r.kind, r.outcome, r.reason])).toEqual([
      ['a2', 'activation', 'pending', null],
      ['t1', 'top-up', 'unknown', 'timeout'],
      ['s1', 'suspension', 'failed', 'provider said no'],
      ['a1', 'activation', 'completed', null],
    ]);
    expect(requests[1]?.detail).toBe('sms quota');
    expect(requests[0]?.actor).toBe('ops');
  });

  it('lets a later report settle an unknown outcome', () => {
    const requests = requestsOf([
      event('TopUpRequested', { request_id: 't2', kind: 'data' }, `${ICCID}:data`),
      event('TopUpOutcomeUnknown', { request_id: 't2', reason: 'lost answer' }, `${ICCID}:data`),
      event('TopUpCompleted', { request_id: 't2' }, `${ICCID}:data`),
    ]);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ outcome: 'completed', reason: null });
  });

  it('follows an SMS by its message id', () => {
    const id = '0d9b6d0e-6a43-4d4b-9d1a-2f7b3c1e0a11';
    const sent = [event('SmsSendRequested', { iccid: ICCID, payload: 'hi' }, id), event('SmsSubmitted', { iccid: ICCID }, id)];
    expect(requestsOf(sent)[0]).toMatchObject({ id, kind: 'sms', outcome: 'pending', detail: 'submitted to 1NCE' });
    expect(requestsOf([...sent, event("SmsDelivered", { iccid: ICCID }, id)])[0]?.outcome).toBe('completed');
  });

  it('orders by position, not by the order given', () => {
    const requested = event('ActivationRequested', { request_id: 'a3' });
    const failed = event('ActivationFailed', { request_id: 'a3', reason: 'no' });
    expect(requestsOf([failed, requested])[0]?.outcome).toBe('failed');
  });

  it('follows a label and IMEI lock update to 1NCE, superseded or failed', () => {
    const requests = requestsOf([
      event('ProviderUpdateRequested', { request_id: 'u1', label: 'pump 7', imei_lock: true }),
      event('ProviderUpdateCompleted', { request_id: 'u1' }),
      event('ProviderUpdateRequested', { request_id: 'u2', label: null, imei_lock: false }),
      event('ProviderUpdateFailed', { request_id: 'u2', reason: '422: expired' }),
    ]);
    expect(requests.map((r) => [r.id, r.kind, r.outcome, r.reason, r.detail])).toEqual([
      ['u2', 'label-imei-lock', 'failed', '422: expired', 'no label, IMEI lock off'],
      ['u1', 'label-imei-lock', 'completed', null, 'label “pump 7”, IMEI lock on'],
    ]);
  });

  it('follows connectivity resets and auto top-up changes to their outcome', () => {
    const requests = requestsOf([
      event('ConnectivityResetRequested', { request_id: 'r1' }),
      event('ConnectivityResetFailed', { request_id: 'r1', reason: '422: the SIM is not attached' }),
      event('AutoTopUpChangeRequested', { request_id: 'a1', enabled: true }),
      event('AutoTopUpChangeCompleted', { request_id: 'a1', enabled: true }),
      event('ConnectivityResetRequested', { request_id: 'r2' }),
    ]);
    expect(requests.map((r) => [r.id, r.kind, r.outcome, r.reason, r.detail])).toEqual([
      ['r2', 'connectivity-reset', 'pending', null, null],
      ['a1', 'auto-top-up', 'completed', null, 'on'],
      ['r1', 'connectivity-reset', 'failed', '422: the SIM is not attached', null],
    ]);
  });

  it('ignores reports of requests outside the history given', () => {
    expect(requestsOf([event('ActivationCompleted', { request_id: 'elsewhere' })])).toEqual([]);
  });
});
