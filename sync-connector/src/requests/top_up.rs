//! Top-ups: the provider takes no idempotency key, so the quota before the call is recorded
//! and, after a lost answer or a crash, compared with the quota after it to tell whether the
//! top-up took effect (completed, failed, or recorded as unknown; never sent twice).

use std::time::Duration;

use chrono::Utc;
use domain::{Iccid, Quota, QuotaCommand, QuotaKind};
use serde_json::json;
use uuid::Uuid;

use super::{backoff, is_refusal, Claim, Disposition, Requests};
use crate::convert;
use crate::dispatch::{Dispatch, RequestKind};
use crate::error::SyncError;
use crate::issue::Cause;

impl Requests {
    pub(super) async fn top_up(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        kind: QuotaKind,
        request_id: Uuid,
        payment_method: Option<String>,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let quota = self.issuer.store().load::<Quota>(aggregate_id).await?.state;
        if quota.pending_top_up().is_none_or(|p| p.request_id != request_id) {
            self.dispatches.close_settled(request_id).await?;
            return Ok(Disposition::Done);
        }
        let client_kind = kind;
        let before = match self
            .claim(RequestKind::TopUp, request_id, aggregate_id, iccid)
            .await?
        {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(Disposition::RetryLater(Duration::from_secs(5))),
            Claim::Reconcile(record) => {
                return self
                    .reconcile_top_up(aggregate_id, iccid, kind, request_id, &record, cause)
                    .await
            }
            Claim::Fresh(record) => {
                // What the quota was before, to recognise the top-up's effect later.
                let before = match self.client.quota(iccid.as_str(), client_kind).await {
                    Ok(quota) => quota,
                    Err(error) if is_refusal(&error) => {
                        return self
                            .fail_top_up(aggregate_id, iccid, request_id, error.to_string(), cause)
                            .await
                    }
                    Err(error) => {
                        tracing::warn!(%error, %request_id, "cannot read the quota before a top-up; will retry");
                        return Ok(Disposition::RetryLater(backoff(record.attempts)));
                    }
                };
                let before_json = json!({ "quota": convert::quota_record(&before) });
                if !self
                    .dispatches
                    .mark_dispatching(request_id, self.instance, &before_json)
                    .await?
                {
                    return Ok(Disposition::RetryLater(Duration::from_secs(5)));
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
                let after = self.client.quota(iccid.as_str(), client_kind).await.ok();
                let volume_added = after
                    .as_ref()
                    .map(|after| added_volume(&before, &convert::quota_record(after)))
                    .unwrap_or(0);
                self.complete_top_up(
                    aggregate_id,
                    iccid,
                    request_id,
                    volume_added,
                    order.location.as_deref(),
                    cause,
                )
                .await
            }
            Err(error) if !error.outcome_unknown() && is_refusal(&error) => {
                self.fail_top_up(aggregate_id, iccid, request_id, error.to_string(), cause)
                    .await
            }
            Err(error) if !error.outcome_unknown() => {
                tracing::warn!(%error, %request_id, "top-up not carried out (the provider did not take it); will retry");
                self.dispatches.release(request_id).await?;
                Ok(Disposition::RetryLater(Duration::from_secs(5)))
            }
            Err(error) => {
                tracing::warn!(%error, %request_id, "top-up outcome unknown; reconciling with the provider's quota");
                let record = self
                    .dispatches
                    .open(request_id, RequestKind::TopUp, aggregate_id, iccid.as_str())
                    .await?;
                self.reconcile_top_up(aggregate_id, iccid, kind, request_id, &record, cause)
                    .await
            }
        }
    }

    /// After a lost answer or a crash: did the provider's quota change since the call was
    /// about to be made? Then the top-up happened; otherwise nobody can tell.
    async fn reconcile_top_up(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        kind: QuotaKind,
        request_id: Uuid,
        record: &Dispatch,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let Some(before) = record
            .before_call
            .as_ref()
            .and_then(|v| serde_json::from_value::<convert::QuotaRecord>(v["quota"].clone()).ok())
        else {
            return self
                .unknown_top_up(
                    aggregate_id,
                    iccid,
                    request_id,
                    "no record of the quota before the call",
                    cause,
                )
                .await;
        };
        let after = match self.client.quota(iccid.as_str(), kind).await {
            Ok(after) => convert::quota_record(&after),
            Err(error) => {
                tracing::warn!(%error, %request_id, "cannot read the quota to reconcile a top-up; will retry");
                return Ok(Disposition::RetryLater(Duration::from_secs(5)));
            }
        };
        if after.total > before.total
            || (after.last_change.is_some()
                && after.last_change != before.last_change
                && after.last_volume_added.is_some())
        {
            let volume_added = added_volume(&before, &after);
            tracing::info!(%request_id, volume_added, "the provider's quota shows the top-up: completed");
            return self
                .complete_top_up(aggregate_id, iccid, request_id, volume_added, None, cause)
                .await;
        }
        self.unknown_top_up(
            aggregate_id,
            iccid,
            request_id,
            "the call's answer was lost and the provider's quota does not show a top-up",
            cause,
        )
        .await
    }

    async fn complete_top_up(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        request_id: Uuid,
        volume_added: u64,
        location: Option<&str>,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::CompleteTopUp {
            request_id,
            volume_added,
            at: Utc::now(),
        };
        self.settle::<Quota>(aggregate_id, iccid, vec![command], request_id, cause)
            .await?;
        self.dispatches
            .finish(request_id, "completed", "completed", location)
            .await?;
        self.metrics.request("topup", "completed");
        Ok(Disposition::Done)
    }

    async fn fail_top_up(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        request_id: Uuid,
        reason: String,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::FailTopUp {
            request_id,
            reason: reason.clone(),
            at: Utc::now(),
        };
        self.settle::<Quota>(aggregate_id, iccid, vec![command], request_id, cause)
            .await?;
        self.dispatches
            .finish(request_id, "failed", &reason, None)
            .await?;
        self.metrics.request("topup", "failed");
        Ok(Disposition::Done)
    }

    async fn unknown_top_up(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        request_id: Uuid,
        reason: &str,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let command = QuotaCommand::RecordTopUpOutcomeUnknown {
            request_id,
            reason: reason.to_owned(),
            at: Utc::now(),
        };
        self.settle::<Quota>(aggregate_id, iccid, vec![command], request_id, cause)
            .await?;
        self.dispatches
            .finish(request_id, "unknown", reason, None)
            .await?;
        self.metrics.request("topup", "unknown");
        Ok(Disposition::Done)
    }
}

fn added_volume(before: &convert::QuotaRecord, after: &convert::QuotaRecord) -> u64 {
    match after.total.checked_sub(before.total) {
        Some(grown) if grown > 0 => grown,
        _ => after.last_volume_added.unwrap_or(0),
    }
}
