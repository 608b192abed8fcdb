//! MT SMS: sending a message the platform asked for (the provider takes no idempotency key,
//! so a lost answer is reconciled with the SIM's SMS list), and the delivery reports of the
//! platform's submitted messages, read from that list by the per-SIM refresh.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{Encoding, Iccid, Sms, SmsCommand, SmsStatus};
use once_client::SmsSubmission;
use serde_json::json;
use sqlx::PgPool;

use super::{Claim, Disposition, FailedCall, Request, Requests, RETRY_SOON};
use crate::convert;
use crate::dispatch::{Dispatch, Dispatches};
use crate::error::SyncError;
use crate::issue::{Cause, Issuer};

impl Requests {
    pub(super) async fn send_sms(
        &self,
        request: Request<'_>,
        payload: String,
        source_address: Option<String>,
        encoding: Encoding,
    ) -> Result<Disposition, SyncError> {
        let iccid = request.sim()?;
        let sms = self.issuer.store().load::<Sms>(request.aggregate_id).await?.state;
        if sms.status() != Some(SmsStatus::Requested) {
            return self.close_settled(&request).await;
        }
        match self.claim(&request).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(RETRY_SOON),
            Claim::Reconcile(record) => {
                return self.reconcile_sms(&request, &payload, &record).await;
            }
            Claim::Fresh(_) => {
                if !self
                    .mark_dispatching(&request, &json!({ "payload": payload }))
                    .await?
                {
                    return Ok(RETRY_SOON);
                }
            }
        }
        let mut submission = SmsSubmission::text(
            source_address.unwrap_or_else(|| self.sms_source_address.clone()),
            payload.clone(),
        );
        if encoding == Encoding::Ucs2 {
            // The provider's data coding scheme for UCS-2 text.
            submission.dcs = Some(8);
        }
        match self.client.send_sms(iccid.as_str(), &submission).await {
            Ok(receipt) => {
                let provider_id = receipt.id.map(|id| id.to_string());
                self.submitted(&request, provider_id).await
            }
            Err(error) => match self.failed_call(&request, error).await? {
                FailedCall::Refused(reason) => {
                    let command = SmsCommand::MarkFailed {
                        reason: reason.clone(),
                        at: Utc::now(),
                    };
                    self.finish::<Sms>(&request, vec![command], "failed", &reason, None)
                        .await
                }
                FailedCall::NotTaken => Ok(RETRY_SOON),
                FailedCall::OutcomeUnknown(record) => self.reconcile_sms(&request, &payload, &record).await,
            },
        }
    }

    /// Looks for the message in the SIM's SMS list at the provider: an MT message with the same
    /// text, submitted after the call was about to be made, and not matched to another request.
    async fn reconcile_sms(
        &self,
        request: &Request<'_>,
        payload: &str,
        record: &Dispatch,
    ) -> Result<Disposition, SyncError> {
        let (iccid, message_id) = (request.sim()?, request.id);
        let messages = match self.client.all_sms(iccid.as_str()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, %message_id, "cannot read the SMS list to reconcile; will retry");
                return Ok(RETRY_SOON);
            }
        };
        let claimed = self.dispatches.claimed_sms_ids(iccid.as_str()).await?;
        let since = record
            .dispatched_at
            .map(|at| at - ChronoDuration::minutes(5))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let found = convert::mt_messages(&messages)
            .into_iter()
            .filter(|m| m.payload == payload)
            .filter(|m| m.submitted_at.is_none_or(|at| at >= since))
            .filter(|m| !claimed.contains(&m.provider_id.to_string()))
            .min_by_key(|m| m.provider_id);
        match found {
            Some(message) => {
                tracing::info!(%message_id, provider_id = message.provider_id, "the provider has the SMS: submitted");
                self.submitted(request, Some(message.provider_id.to_string()))
                    .await
            }
            None => {
                let reason =
                    "the call's answer was lost and the provider's SMS list does not show the message";
                let command = SmsCommand::MarkOutcomeUnknown {
                    reason: reason.to_owned(),
                    at: Utc::now(),
                };
                self.finish::<Sms>(request, vec![command], "unknown", reason, None)
                    .await
            }
        }
    }

    async fn submitted(
        &self,
        request: &Request<'_>,
        provider_id: Option<String>,
    ) -> Result<Disposition, SyncError> {
        let command = SmsCommand::MarkSubmitted {
            provider_message_id: provider_id.clone(),
            at: Utc::now(),
        };
        self.finish::<Sms>(
            request,
            vec![command],
            "completed",
            "submitted",
            provider_id.as_deref(),
        )
        .await
    }
}

/// Delivery reports of the platform's MT messages, from a SIM's SMS list at the provider.
pub async fn settle_mt_messages(
    issuer: &Issuer,
    pool: &PgPool,
    iccid: &Iccid,
    messages: &[once_client::Sms],
) -> Result<usize, SyncError> {
    let dispatches = Dispatches::new(pool.clone());
    let mut events = 0;
    for (request_id, aggregate_id, provider_ref) in dispatches.submitted_sms(iccid.as_str()).await? {
        let Some(report) = convert::mt_messages(messages)
            .into_iter()
            .find(|m| m.provider_id.to_string() == provider_ref)
        else {
            continue;
        };
        let at = report.final_at.unwrap_or_else(Utc::now);
        let (command, outcome) = match report.outcome {
            convert::MtOutcome::Delivered => (SmsCommand::MarkDelivered { at }, "delivered"),
            convert::MtOutcome::Failed(reason) => (SmsCommand::MarkFailed { reason, at }, "failed"),
            convert::MtOutcome::Pending => continue,
        };
        match issuer
            .issue::<Sms>(
                &aggregate_id,
                iccid,
                vec![command],
                &("delivery", &provider_ref, outcome),
                Cause::default(),
            )
            .await
        {
            Ok(n) => events += n,
            Err(SyncError::Refused { code, .. }) => {
                tracing::debug!(%aggregate_id, code, "delivery report not applicable")
            }
            Err(error) => return Err(error),
        }
        dispatches.set_outcome(request_id, outcome).await?;
    }
    Ok(events)
}
