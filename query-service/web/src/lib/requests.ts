// The requests a SIM's history holds (activation, suspension, label and IMEI lock at 1NCE,
// top-up, connectivity reset, auto top-up, SMS sent to it) and how
// each ended, as the sync connector reported it: the status card's "requests" list.

/** The fields of a stored event this needs (the query API's StoredEvent). */
export interface HistoryEvent {
  position: number;
  aggregate_id: string;
  event_type: string;
  recorded_at: string;
  metadata: Record<string, unknown>;
  payload: Record<string, unknown>;
}

export type RequestKind = 'activation' | 'suspension' | 'label-imei-lock' | 'top-up' | 'sms' | 'connectivity-reset' | 'auto-top-up';
/** `unknown`: the connector could not tell whether 1NCE took it; an operator has to look. */
export type Outcome = 'pending' | 'completed' | 'failed' | 'unknown';

export interface SimRequest {
  /** The request id (the message id for an SMS). */
  id: string;
  kind: RequestKind;
  requestedAt: string;
  actor: string | null;
  outcome: Outcome;
  /** Why it failed or is unknown, as reported. */
  reason: string | null;
  /** When the last report about it was recorded. */
  settledAt: string | null;
  /** Extra words: the quota kind of a top-up, the SMS's progress. */
  detail: string | null;
}

const REQUESTED: Record<string, RequestKind> = {
  ActivationRequested: 'activation',
  SuspensionRequested: 'suspension',
  ProviderUpdateRequested: 'label-imei-lock',
  TopUpRequested: 'top-up',
  SmsSendRequested: 'sms',
  ConnectivityResetRequested: 'connectivity-reset',
  AutoTopUpChangeRequested: 'auto-top-up',
};

const REPORTS: Record<string, Outcome> = {
  ActivationCompleted: 'completed',
  ActivationFailed: 'failed',
  SuspensionCompleted: 'completed',
  SuspensionFailed: 'failed',
  ProviderUpdateCompleted: 'completed',
  ProviderUpdateFailed: 'failed',
  ProviderUpdateOutcomeUnknown: 'unknown',
  TopUpCompleted: 'completed',
  TopUpFailed: 'failed',
  TopUpOutcomeUnknown: 'unknown',
  SmsSubmitted: 'pending',
  SmsDelivered: 'completed',
  SmsFailed: 'failed',
  SmsOutcomeUnknown: 'unknown',
  ConnectivityResetCompleted: 'completed',
  ConnectivityResetFailed: 'failed',
  ConnectivityResetOutcomeUnknown: 'unknown',
  AutoTopUpChangeCompleted: 'completed',
  AutoTopUpChangeFailed: 'failed',
  AutoTopUpChangeOutcomeUnknown: 'unknown',
};

/** Extra words when requested: a top-up's quota, the label and lock an update sets at 1NCE. */
function detailOf(kind: RequestKind, payload: Record<string, unknown>): string | null {
  if (kind === 'top-up') return `${String(payload.kind ?? 'data')} quota`;
  if (kind === 'auto-top-up') return payload.enabled ? 'on' : 'off';
  if (kind === 'label-imei-lock') {
    const label = typeof payload.label === 'string' ? `label “${payload.label}”` : 'no label';
    return `${label}, IMEI lock ${payload.imei_lock ? 'on' : 'off'}`;
  }
  return null;
}

function requestId(event: HistoryEvent): string {
  // SMS events belong to the message's aggregate; the others name their request.
  return event.event_type.startsWith('Sms') ? event.aggregate_id : String(event.payload.request_id ?? event.aggregate_id);
}

/** Every request in the history, newest first, with its latest reported outcome. */
export function requestsOf(events: readonly HistoryEvent[]): SimRequest[] {
  const byId = new Map<string, SimRequest>();
  for (const event of [...events].sort((a, b) => a.position - b.position)) {
    const kind = REQUESTED[event.event_type];
    if (kind) {
      byId.set(requestId(event), {
        id: requestId(event),
        kind,
        requestedAt: event.recorded_at,
        actor: typeof event.metadata.actor === 'string' ? event.metadata.actor : null,
        outcome: 'pending',
        reason: null,
        settledAt: null,
        detail: detailOf(kind, event.payload),
      });
      continue;
    }
    const outcome = REPORTS[event.event_type];
    const request = outcome && byId.get(requestId(event));
    if (!request) continue;
    // A later report settles an "unknown" one (the provider's answer was found after all).
    request.outcome = outcome;
    request.reason = typeof event.payload.reason === 'string' ? event.payload.reason : null;
    request.settledAt = event.recorded_at;
    if (event.event_type === 'SmsSubmitted') request.detail = 'submitted to 1NCE';
  }
  return [...byId.values()].reverse();
}
