//! Operator requests carried out at 1NCE: activation, suspension, top-up and MT SMS.
//!
//! Each *Requested event reaches the connector through a durable JetStream consumer. The
//! request is carried out only while its aggregate still has it pending, and a record in
//! `sync_dispatches` is committed before the provider is called. Activation and suspension are
//! idempotent at the provider (a PUT of the status) and are simply repeated when in doubt.
//! Top-ups and SMS take no idempotency key at 1NCE, so after a lost answer or a crash the
//! connector looks at the provider's state (the quota, the SIM's SMS list) to learn whether
//! the call took effect, and records the outcome as unknown when it cannot tell; it never sends
//! such a call twice.

use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{
    Encoding, Iccid, ProviderStatus, Quota, QuotaCommand, QuotaEvent, QuotaKind, Sim, SimCommand, SimEvent,
    Sms, SmsCommand, SmsEvent, SmsStatus,
};
use eventstore::StoredEvent;
use once_client::{ClientError, OnceClient, Priority, SimState, SimUpdate, SmsSubmission};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::convert;
use crate::dispatch::{is_alive, Dispatch, Dispatches, Instance, RequestKind};
use crate::error::SyncError;
use crate::issue::{Cause, Issuer};
use crate::metrics::SyncMetrics;

/// Attempts at an idempotent request (activation, suspension) before it is recorded as failed.
const MAX_ATTEMPTS: i32 = 20;

/// What to do with the message that carried the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Settled (or nothing left to do): acknowledge.
    Done,
    /// Try again later: redeliver after this delay.
    RetryLater(Duration),
}

#[derive(Clone)]
pub struct Requests {
    client: OnceClient,
    issuer: Issuer,
    dispatches: Dispatches,
    instance: Uuid,
    metrics: SyncMetrics,
    sms_source_address: String,
}

impl Requests {
    pub fn new(
        client: &OnceClient,
        issuer: Issuer,
        dispatches: Dispatches,
        instance: &Instance,
        metrics: SyncMetrics,
        sms_source_address: String,
    ) -> Self {
        Self {
            client: client.with_priority(Priority::OperatorRequest),
            issuer,
            dispatches,
            instance: instance.id,
            metrics,
            sms_source_address,
        }
    }

    /// Carries out the request an event asks for.
    pub async fn handle(&self, event: &StoredEvent) -> Result<Disposition, SyncError> {
        let iccid = Iccid::parse(&event.iccid).map_err(|e| SyncError::decode("the event's ICCID", e))?;
        let cause = Cause {
            correlation_id: metadata_uuid(event, "correlation_id"),
            causation_id: metadata_uuid(event, "command_id"),
        };
        match event.aggregate_type.as_str() {
            "sim" => match event.to_domain::<SimEvent>() {
                Ok(SimEvent::ActivationRequested { request_id, .. }) => {
                    self.status_change(RequestKind::Activation, &iccid, request_id, cause)
                        .await
                }
                Ok(SimEvent::SuspensionRequested { request_id, .. }) => {
                    self.status_change(RequestKind::Suspension, &iccid, request_id, cause)
                        .await
                }
                Ok(_) => Ok(Disposition::Done),
                Err(e) => Err(SyncError::decode(format!("event {}", event.event_type), e)),
            },
            "quota" => match event.to_domain::<QuotaEvent>() {
                Ok(QuotaEvent::TopUpRequested {
                    request_id,
                    kind,
                    payment_method,
                    ..
                }) => {
                    self.top_up(
                        &event.aggregate_id,
                        &iccid,
                        kind,
                        request_id,
                        payment_method,
                        cause,
                    )
                    .await
                }
                Ok(_) => Ok(Disposition::Done),
                Err(e) => Err(SyncError::decode(format!("event {}", event.event_type), e)),
            },
            "sms" => match event.to_domain::<SmsEvent>() {
                Ok(SmsEvent::SmsSendRequested {
                    message_id,
                    payload,
                    source_address,
                    encoding,
                    ..
                }) => {
                    self.send_sms(&iccid, message_id, payload, source_address, encoding, cause)
                        .await
                }
                Ok(_) => Ok(Disposition::Done),
                Err(e) => Err(SyncError::decode(format!("event {}", event.event_type), e)),
            },
            _ => Ok(Disposition::Done),
        }
    }

    /// Who may work on the dispatch now: `Some(record)` for this instance, `None` when it is
    /// settled or another live instance is on it.
    async fn claim(
        &self,
        kind: RequestKind,
        request_id: Uuid,
        aggregate_id: &str,
        iccid: &Iccid,
    ) -> Result<Claim, SyncError> {
        let record = self
            .dispatches
            .open(request_id, kind, aggregate_id, iccid.as_str())
            .await?;
        Ok(match record.state.as_str() {
            "pending" => Claim::Fresh(record),
            "dispatching" => match record.owner {
                Some(owner) if owner == self.instance => Claim::Reconcile(record),
                Some(owner) if is_alive(self.dispatches.pool(), owner).await? => Claim::Busy,
                owner => {
                    if self
                        .dispatches
                        .take_over(request_id, owner, self.instance)
                        .await?
                    {
                        tracing::info!(%request_id, kind = kind.as_str(), previous_owner = ?owner, "taking over a dispatch whose instance died");
                        Claim::Reconcile(record)
                    } else {
                        Claim::Busy
                    }
                }
            },
            _ => Claim::Settled,
        })
    }

    async fn status_change(
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

    async fn top_up(
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

    async fn send_sms(
        &self,
        iccid: &Iccid,
        message_id: Uuid,
        payload: String,
        source_address: Option<String>,
        encoding: Encoding,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let aggregate_id = message_id.to_string();
        let sms = self.issuer.store().load::<Sms>(&aggregate_id).await?.state;
        if sms.status() != Some(SmsStatus::Requested) {
            self.dispatches.close_settled(message_id).await?;
            return Ok(Disposition::Done);
        }
        match self
            .claim(RequestKind::Sms, message_id, &aggregate_id, iccid)
            .await?
        {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(Disposition::RetryLater(Duration::from_secs(5))),
            Claim::Reconcile(record) => {
                return self
                    .reconcile_sms(iccid, message_id, &payload, &record, cause)
                    .await;
            }
            Claim::Fresh(_) => {
                if !self
                    .dispatches
                    .mark_dispatching(message_id, self.instance, &json!({ "payload": payload }))
                    .await?
                {
                    return Ok(Disposition::RetryLater(Duration::from_secs(5)));
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
                self.submitted(iccid, message_id, provider_id, cause).await
            }
            Err(error) if !error.outcome_unknown() && is_refusal(&error) => {
                let reason = error.to_string();
                let command = SmsCommand::MarkFailed {
                    reason: reason.clone(),
                    at: Utc::now(),
                };
                self.settle::<Sms>(&aggregate_id, iccid, vec![command], message_id, cause)
                    .await?;
                self.dispatches
                    .finish(message_id, "failed", &reason, None)
                    .await?;
                self.metrics.request("sms", "failed");
                Ok(Disposition::Done)
            }
            Err(error) if !error.outcome_unknown() => {
                tracing::warn!(%error, %message_id, "SMS not handed over (the provider did not take it); will retry");
                self.dispatches.release(message_id).await?;
                Ok(Disposition::RetryLater(Duration::from_secs(5)))
            }
            Err(error) => {
                tracing::warn!(%error, %message_id, "SMS outcome unknown; reconciling with the provider's SMS list");
                let record = self
                    .dispatches
                    .open(message_id, RequestKind::Sms, &aggregate_id, iccid.as_str())
                    .await?;
                self.reconcile_sms(iccid, message_id, &payload, &record, cause)
                    .await
            }
        }
    }

    /// Looks for the message in the SIM's SMS list at the provider: an MT message with the same
    /// text, submitted after the call was about to be made, and not matched to another request.
    async fn reconcile_sms(
        &self,
        iccid: &Iccid,
        message_id: Uuid,
        payload: &str,
        record: &Dispatch,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let messages = match self.client.all_sms(iccid.as_str()).await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, %message_id, "cannot read the SMS list to reconcile; will retry");
                return Ok(Disposition::RetryLater(Duration::from_secs(5)));
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
                self.submitted(iccid, message_id, Some(message.provider_id.to_string()), cause)
                    .await
            }
            None => {
                let reason =
                    "the call's answer was lost and the provider's SMS list does not show the message";
                let command = SmsCommand::MarkOutcomeUnknown {
                    reason: reason.to_owned(),
                    at: Utc::now(),
                };
                self.settle::<Sms>(&message_id.to_string(), iccid, vec![command], message_id, cause)
                    .await?;
                self.dispatches
                    .finish(message_id, "unknown", reason, None)
                    .await?;
                self.metrics.request("sms", "unknown");
                Ok(Disposition::Done)
            }
        }
    }

    async fn submitted(
        &self,
        iccid: &Iccid,
        message_id: Uuid,
        provider_id: Option<String>,
        cause: Cause,
    ) -> Result<Disposition, SyncError> {
        let command = SmsCommand::MarkSubmitted {
            provider_message_id: provider_id.clone(),
            at: Utc::now(),
        };
        self.settle::<Sms>(&message_id.to_string(), iccid, vec![command], message_id, cause)
            .await?;
        self.dispatches
            .finish(message_id, "completed", "submitted", provider_id.as_deref())
            .await?;
        self.metrics.request("sms", "completed");
        Ok(Disposition::Done)
    }

    /// Issues a confirming command; a refusal means the request was settled meanwhile (e.g.
    /// by an earlier attempt that crashed before updating its record), which is fine.
    async fn settle<A>(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        commands: Vec<A::Command>,
        request_id: Uuid,
        cause: Cause,
    ) -> Result<(), SyncError>
    where
        A: domain::Aggregate,
        A::Command: Clone,
    {
        match self
            .issuer
            .issue::<A>(aggregate_id, iccid, commands, &("settle", request_id), cause)
            .await
        {
            Ok(_) => Ok(()),
            Err(SyncError::Refused { code, message, .. }) => {
                tracing::info!(%request_id, code, %message, "request already settled");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

enum Claim {
    Fresh(Dispatch),
    Reconcile(Dispatch),
    Busy,
    Settled,
}

/// The provider refused the request itself (4xx other than 429): retrying cannot help.
fn is_refusal(error: &ClientError) -> bool {
    matches!(error, ClientError::Rejected { .. } | ClientError::NotFound { .. })
}

fn added_volume(before: &convert::QuotaRecord, after: &convert::QuotaRecord) -> u64 {
    match after.total.checked_sub(before.total) {
        Some(grown) if grown > 0 => grown,
        _ => after.last_volume_added.unwrap_or(0),
    }
}

fn backoff(attempts: i32) -> Duration {
    Duration::from_secs((2u64.saturating_pow(attempts.clamp(0, 8) as u32)).min(300))
}

fn metadata_uuid(event: &StoredEvent, field: &str) -> Option<Uuid> {
    event.metadata.get(field)?.as_str()?.parse().ok()
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
