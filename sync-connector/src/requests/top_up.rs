//! Top-ups: the provider takes no idempotency key, so the quota before the call is recorded
//! and, after a lost answer or a crash, compared with the quota after it to tell whether the
//! top-up took effect (completed, failed, or recorded as unknown; never sent twice).

use chrono::Utc;
use domain::{Quota, QuotaCommand, QuotaKind};
use serde_json::json;

use super::{backoff, is_refusal, Claim, Disposition, FailedCall, Request, Requests, RETRY_SOON};
use crate::convert;
use crate::dispatch::Dispatch;
use crate::error::SyncError;

impl Requests {
    pub(super) async fn top_up(
        &self,
        request: Request<'_>,
        kind: QuotaKind,
        payment_method: Option<String>,
    ) -> Result<Disposition, SyncError> {
        let (iccid, request_id) = (request.sim()?, request.id);
        let quota = self
            .issuer
            .store()
            .load::<Quota>(request.aggregate_id)
            .await?
            .state;
        if quota.pending_top_up().is_none_or(|p| p.request_id != request_id) {
            return self.close_settled(&request).await;
        }
        let before = match self.claim(&request).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(RETRY_SOON),
            Claim::Reconcile(record) => return self.reconcile_top_up(&request, kind, &record).await,
            Claim::Fresh(record) => {
                // What the quota was before, to recognise the top-up's effect later.
                let before = match self.client.quota(iccid.as_str(), kind).await {
                    Ok(quota) => quota,
                    Err(error) if is_refusal(&error) => {
                        return self.fail_top_up(&request, error.to_string()).await
                    }
                    Err(error) => {
                        tracing::warn!(%error, %request_id, "cannot read the quota before a top-up; will retry");
                        return Ok(Disposition::RetryLater(backoff(record.attempts)));
                    }
                };
                let before_json = json!({ "quota": convert::quota_record(&before) });
                if !self.mark_dispatching(&request, &before_json).await? {
                    return Ok(RETRY_SOON);
                }
                convert::quota_record(&before)
            }
        };
        match self
            .client
            .top_up(iccid.as_str(), payment_method.as_deref())
            .await
        {
            Ok(order) => {
                let after = self.client.quota(iccid.as_str(), kind).await.ok();
                let volume_added = after
                    .as_ref()
                    .map(|after| added_volume(&before, &convert::quota_record(after)))
                    .unwrap_or(0);
                self.complete_top_up(&request, volume_added, order.location.as_deref())
                    .await
            }
            Err(error) => match self.failed_call(&request, error).await? {
                FailedCall::Refused(reason) => self.fail_top_up(&request, reason).await,
                FailedCall::NotTaken => Ok(RETRY_SOON),
                FailedCall::OutcomeUnknown(record) => self.reconcile_top_up(&request, kind, &record).await,
            },
        }
    }

    /// After a lost answer or a crash: did the provider's quota change since the call was
    /// about to be made? Then the top-up happened; otherwise nobody can tell.
    async fn reconcile_top_up(
        &self,
        request: &Request<'_>,
        kind: QuotaKind,
        record: &Dispatch,
    ) -> Result<Disposition, SyncError> {
        let request_id = request.id;
        let Some(before) = record
            .before_call
            .as_ref()
            .and_then(|v| serde_json::from_value::<convert::QuotaRecord>(v["quota"].clone()).ok())
        else {
            return self
                .unknown_top_up(request, "no record of the quota before the call")
                .await;
        };
        let after = match self.client.quota(request.sim()?.as_str(), kind).await {
            Ok(after) => convert::quota_record(&after),
            Err(error) => {
                tracing::warn!(%error, %request_id, "cannot read the quota to reconcile a top-up; will retry");
                return Ok(RETRY_SOON);
            }
        };
        if after.total > before.total
            || (after.last_change.is_some()
                && after.last_change != before.last_change
                && after.last_volume_added.is_some())
        {
            let volume_added = added_volume(&before, &after);
            tracing::info!(%request_id, volume_added, "the provider's quota shows the top-up: completed");
            return self.complete_top_up(request, volume_added, None).await;
        }
        self.unknown_top_up(
            request,
            "the call's answer was lost and the provider's quota does not show a top-up",
        )
        .await
    }

    async fn complete_top_up(
        &self,
        request: &Request<'_>,
        volume_added: u64,
        location: Option<&str>,
    ) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::CompleteTopUp {
            request_id: request.id,
            volume_added,
            at: Utc::now(),
        };
        self.finish::<Quota>(request, vec![command], "completed", "completed", location)
            .await
    }

    async fn fail_top_up(&self, request: &Request<'_>, reason: String) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::FailTopUp {
            request_id: request.id,
            reason: reason.clone(),
            at: Utc::now(),
        };
        self.finish::<Quota>(request, vec![command], "failed", &reason, None)
            .await
    }

    async fn unknown_top_up(&self, request: &Request<'_>, reason: &str) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::RecordTopUpOutcomeUnknown {
            request_id: request.id,
            reason: reason.to_owned(),
            at: Utc::now(),
        };
        self.finish::<Quota>(request, vec![command], "unknown", reason, None)
            .await
    }
}

fn added_volume(before: &convert::QuotaRecord, after: &convert::QuotaRecord) -> u64 {
    match after.total.checked_sub(before.total) {
        Some(grown) if grown > 0 => grown,
        _ => after.last_volume_added.unwrap_or(0),
    }
}
