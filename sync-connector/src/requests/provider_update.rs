//! Label and IMEI lock: a PUT of the SIM at the provider with the values of the SIM's pending
//! provider update. The PUT is idempotent, so a lost answer is settled by reading the SIM back:
//! when the provider shows the values the update completed, otherwise it is sent again, up to
//! `MAX_ATTEMPTS`; after that it ends failed, or unknown when the last answer was lost.
//!
//! Only the newest update of a SIM is carried out: one superseded by a later change is no
//! longer pending on the aggregate and is closed without a call.

use chrono::Utc;
use domain::{PendingUpdate, Sim, SimCommand};
use once_client::{ClientError, SimUpdate};
use serde_json::json;

use super::{backoff, is_refusal, Claim, Disposition, Request, Requests, RETRY_SOON};
use crate::error::SyncError;

/// Attempts before the update is recorded as failed (or unknown).
const MAX_ATTEMPTS: i32 = 20;

impl Requests {
    pub(super) async fn provider_update(&self, request: Request<'_>) -> Result<Disposition, SyncError> {
        let (iccid, request_id) = (request.sim()?, request.id);
        let sim = self.issuer.store().load::<Sim>(iccid.as_str()).await?.state;
        let Some(pending) = sim
            .pending_update()
            .filter(|p| p.request_id == request_id)
            .cloned()
        else {
            return self.close_settled(&request).await;
        };
        let (record, in_doubt) = match self.claim(&request).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(RETRY_SOON),
            Claim::Fresh(record) => {
                if !self.mark_dispatching(&request, &json!({})).await? {
                    return Ok(RETRY_SOON);
                }
                (record, false)
            }
            Claim::Reconcile(record) => (record, true),
        };
        // After a crash or a lost answer the provider may already show the values.
        if in_doubt && self.provider_shows(&pending, iccid.as_str()).await {
            return self.confirm_update(&request).await;
        }
        let update = SimUpdate {
            iccid: iccid.to_string(),
            // 1NCE has no null label: an empty one clears it.
            label: Some(pending.label.clone().unwrap_or_default()),
            imei_lock: Some(pending.imei_lock),
            status: None,
        };
        let error = match self.client.update_sim(&update).await {
            Ok(()) => return self.confirm_update(&request).await,
            Err(error) => error,
        };
        let now = Utc::now();
        if is_refusal(&error) {
            let reason = error.to_string();
            let fail = SimCommand::FailProviderUpdate {
                request_id,
                reason: reason.clone(),
                at: now,
            };
            return self
                .finish::<Sim>(&request, vec![fail], "failed", &reason, None)
                .await;
        }
        if error.outcome_unknown() && self.provider_shows(&pending, iccid.as_str()).await {
            return self.confirm_update(&request).await;
        }
        if record.attempts + 1 >= MAX_ATTEMPTS {
            return self.give_up(&request, &error).await;
        }
        tracing::warn!(%error, %request_id, "provider update not carried out yet; will retry");
        self.dispatches.release(request_id).await?;
        Ok(Disposition::RetryLater(backoff(record.attempts)))
    }

    async fn confirm_update(&self, request: &Request<'_>) -> Result<Disposition, SyncError> {
        let confirm = SimCommand::ConfirmProviderUpdate {
            request_id: request.id,
            at: Utc::now(),
        };
        self.finish::<Sim>(request, vec![confirm], "completed", "completed", None)
            .await
    }

    /// Out of attempts: unknown when the last answer was lost (the provider may have taken
    /// it), failed when the provider certainly did not.
    async fn give_up(&self, request: &Request<'_>, error: &ClientError) -> Result<Disposition, SyncError> {
        let (request_id, reason, at) = (request.id, error.to_string(), Utc::now());
        if error.outcome_unknown() {
            let unknown = SimCommand::RecordProviderUpdateOutcomeUnknown {
                request_id,
                reason: reason.clone(),
                at,
            };
            return self
                .finish::<Sim>(request, vec![unknown], "unknown", &reason, None)
                .await;
        }
        let fail = SimCommand::FailProviderUpdate {
            request_id,
            reason: reason.clone(),
            at,
        };
        self.finish::<Sim>(request, vec![fail], "failed", &reason, None)
            .await
    }

    /// Whether the provider's SIM already has the update's label and IMEI lock (false when it
    /// cannot be read).
    async fn provider_shows(&self, pending: &PendingUpdate, iccid: &str) -> bool {
        match self.client.sim(iccid).await {
            Ok(sim) => {
                let label = sim.label.as_deref().map(str::trim).filter(|l| !l.is_empty());
                label == pending.label.as_deref() && sim.imei_lock == Some(pending.imei_lock)
            }
            Err(error) => {
                tracing::warn!(%error, iccid, "could not read the SIM back to settle an update");
                false
            }
        }
    }
}
