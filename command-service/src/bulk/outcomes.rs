//! The provider's outcome of a bulk job's requests. A single-SIM route answers once the
//! request is recorded, and its outcome reaches clients later, as events the sync connector
//! records on the same aggregate (`ActivationCompleted`, `TopUpFailed`, `SmsSubmitted`, …),
//! which the read models project. The worker reads those events from the store (the record,
//! and the command API's own) after the version its request left the aggregate at, and
//! settles the item: `completed`, `failed` or `unknown`.

use bulk_jobs::queue::PendingRequest;
use bulk_jobs::BulkJobs;
use domain::quota::QuotaEvent;
use domain::sim::SimEvent;
use domain::sms::SmsEvent;
use eventstore::{GlobalLog, StoreError, StoredEvent};
use std::time::Duration;

use crate::state::AppState;

/// Requests looked at per round.
const PER_ROUND: i64 = 200;
/// A request is looked at again at most this often.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One round: the pending requests least recently looked at, settled when their outcome is
/// recorded. Returns how many were settled.
pub async fn settle(state: &AppState, jobs: &BulkJobs) -> Result<usize, SettleError> {
    let pending = jobs.pending_requests(PER_ROUND, LOOK_AGAIN_AFTER).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let mut conn = state.pool.acquire().await?;
    let mut settled = 0;
    for request in &pending {
        let events = GlobalLog::aggregate_events_between_on(
            &mut conn,
            &request.aggregate_type,
            &request.aggregate_id,
            request.version,
            i64::MAX,
        )
        .await?;
        if let Some((outcome, reason)) = outcome_of(request, &events) {
            jobs.settle_provider(request.job_id, request.seq, outcome, reason.as_deref())
                .await?;
            settled += 1;
        }
    }
    // Looked at now, settled or not: the next round looks at others first.
    jobs.checked(&pending).await?;
    Ok(settled)
}

type Settled = (&'static str, Option<String>);

/// The request's outcome as the aggregate's later events tell it (the last word counts: an
/// SMS whose outcome was unknown may still be reported delivered); `None`: not yet.
fn outcome_of(request: &PendingRequest, events: &[StoredEvent]) -> Option<Settled> {
    let id = request.request_id;
    let mut found = None;
    for event in events {
        let said: Option<Settled> = match request.aggregate_type.as_str() {
            "sim" => match event.to_domain::<SimEvent>().ok()? {
                SimEvent::ActivationCompleted { request_id, .. }
                | SimEvent::SuspensionCompleted { request_id, .. }
                    if request_id == id =>
                {
                    Some(("completed", None))
                }
                SimEvent::ActivationFailed {
                    request_id, reason, ..
                }
                | SimEvent::SuspensionFailed {
                    request_id, reason, ..
                } if request_id == id => Some(("failed", Some(reason))),
                _ => None,
            },
            "quota" => match event.to_domain::<QuotaEvent>().ok()? {
                QuotaEvent::TopUpCompleted { request_id, .. } if request_id == id => {
                    Some(("completed", None))
                }
                QuotaEvent::TopUpFailed {
                    request_id, reason, ..
                } if request_id == id => Some(("failed", Some(reason))),
                QuotaEvent::TopUpOutcomeUnknown {
                    request_id, reason, ..
                } if request_id == id => Some(("unknown", Some(reason))),
                _ => None,
            },
            // The aggregate is the message itself.
            "sms" => match event.to_domain::<SmsEvent>().ok()? {
                SmsEvent::SmsSubmitted { .. } | SmsEvent::SmsDelivered { .. } => Some(("completed", None)),
                SmsEvent::SmsFailed { reason, .. } => Some(("failed", Some(reason))),
                SmsEvent::SmsOutcomeUnknown { reason, .. } => Some(("unknown", Some(reason))),
                _ => None,
            },
            _ => None,
        };
        if said.is_some() {
            found = said;
            // Activations, suspensions and top-ups have one outcome each.
            if request.aggregate_type != "sms" {
                break;
            }
        }
    }
    found
}
