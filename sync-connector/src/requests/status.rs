//! Activation and suspension: a PUT of the SIM's status at the provider, idempotent, so it is
//! simply repeated when in doubt (up to `MAX_ATTEMPTS`), then confirmed or failed on the SIM.

use std::time::Duration;

use chrono::Utc;
use domain::{Iccid, ProviderStatus, Sim, SimCommand};
use once_client::{SimState, SimUpdate};
use serde_json::json;
use uuid::Uuid;

use super::{backoff, is_refusal, Claim, Disposition, Requests};
use crate::dispatch::RequestKind;
use crate::error::SyncError;
use crate::issue::Cause;

/// Attempts at an idempotent request (activation, suspension) before it is recorded as failed.
const MAX_ATTEMPTS: i32 = 20;

impl Requests {
    pub(super) async fn status_change(
        &self,
        kind: RequestKind,
        iccid: &Iccid,
        request_id: Uuid,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let sim = self.issuer.store().load::<Sim>(iccid.as_str()).await?.state;
        if sim.pending_change().is_none_or(|p| p.request_id != request_id) {
            self.dispatches.close_settled(request_id).await?;
            return Ok(Disposition::Done);
        }
        let record = match self.claim(kind, request_id, iccid.as_str(), iccid).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(Disposition::RetryLater(Duration::from_secs(5))),
            Claim::Fresh(record) => {
                if !self
                    .dispatches
                    .mark_dispatching(request_id, self.instance, &json!({}))
                    .await?
                {
                    return Ok(Disposition::RetryLater(Duration::from_secs(5)));
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
                self.settle::<Sim>(iccid.as_str(), iccid, commands, request_id, cause)
                    .await?;
                self.dispatches
                    .finish(request_id, "completed", "completed", None)
                    .await?;
                self.metrics.request(kind.as_str(), "completed");
                Ok(Disposition::Done)
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
                self.settle::<Sim>(iccid.as_str(), iccid, vec![fail], request_id, cause)
                    .await?;
                self.dispatches
                    .finish(request_id, "failed", &reason, None)
                    .await?;
                self.metrics.request(kind.as_str(), "failed");
                Ok(Disposition::Done)
            }
            Err(error) => {
                tracing::warn!(%error, %request_id, kind = kind.as_str(), "status change not carried out yet; will retry");
                self.dispatches.release(request_id).await?;
                Ok(Disposition::RetryLater(backoff(record.attempts)))
            }
        }
    }
}
