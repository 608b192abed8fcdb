//! Activation and suspension: a PUT of the SIM's status at the provider, idempotent, so it is
//! simply repeated when in doubt (up to `MAX_ATTEMPTS`), then confirmed or failed on the SIM.

use chrono::Utc;
use domain::{ProviderStatus, Sim, SimCommand};
use once_client::{SimState, SimUpdate};
use serde_json::json;

use super::{backoff, is_refusal, Claim, Disposition, Request, Requests, RETRY_SOON};
use crate::dispatch::RequestKind;
use crate::error::SyncError;

/// Attempts at an idempotent request (activation, suspension) before it is recorded as failed.
const MAX_ATTEMPTS: i32 = 20;

impl Requests {
    pub(super) async fn status_change(&self, request: Request<'_>) -> Result<Disposition, SyncError> {
        let (kind, iccid, request_id) = (request.kind, request.sim()?, request.id);
        let sim = self.issuer.store().load::<Sim>(iccid.as_str()).await?.state;
        if sim.pending_change().is_none_or(|p| p.request_id != request_id) {
            return self.close_settled(&request).await;
        }
        let record = match self.claim(&request).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(RETRY_SOON),
            Claim::Fresh(record) => {
                if !self.mark_dispatching(&request, &json!({})).await? {
                    return Ok(RETRY_SOON);
                }
                record
            }
            // Setting a status twice is harmless: just set it again.
            Claim::Reconcile(record) => record,
        };
        let (status, provider_status) = match kind {
            RequestKind::Activation => (SimState::Enabled, ProviderStatus::Enabled),
            _ => (SimState::Disabled, ProviderStatus::Disabled),
        };
        let update = SimUpdate {
            iccid: iccid.to_string(),
            label: None,
            imei_lock: None,
            status: Some(status),
        };
        let now = Utc::now();
        match self.client.update_sim(&update).await {
            Ok(()) => {
                let confirm = match kind {
                    RequestKind::Activation => SimCommand::ConfirmActivation { request_id, at: now },
                    _ => SimCommand::ConfirmSuspension { request_id, at: now },
                };
                let commands = vec![
                    confirm,
                    SimCommand::RecordProviderStatus {
                        status: provider_status,
                        at: now,
                    },
                ];
                self.finish::<Sim>(&request, commands, "completed", "completed", None)
                    .await
            }
            Err(error) if is_refusal(&error) || record.attempts + 1 >= MAX_ATTEMPTS => {
                let reason = error.to_string();
                let fail = match kind {
                    RequestKind::Activation => SimCommand::FailActivation {
                        request_id,
                        reason: reason.clone(),
                        at: now,
                    },
                    _ => SimCommand::FailSuspension {
                        request_id,
                        reason: reason.clone(),
                        at: now,
                    },
                };
                self.finish::<Sim>(&request, vec![fail], "failed", &reason, None)
                    .await
            }
            Err(error) => {
                tracing::warn!(%error, %request_id, kind = kind.as_str(), "status change not carried out yet; will retry");
                self.dispatches.release(request_id).await?;
                Ok(Disposition::RetryLater(backoff(record.attempts)))
            }
        }
    }
}
