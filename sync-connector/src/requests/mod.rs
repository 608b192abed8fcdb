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
//!
//! This module holds the shared machinery: the handler that routes each event to its kind,
//! the claim on a dispatch record, the settling of a request on its aggregate, and the
//! retry helpers. The request kinds are in `status` (activation, suspension), `top_up` and
//! `sms` (MT messages and their delivery reports).

mod sms;
mod status;
mod top_up;

use std::time::Duration;

use domain::{Iccid, QuotaEvent, SimEvent, SmsEvent};
use eventstore::StoredEvent;
use once_client::{ClientError, OnceClient, Priority};
use uuid::Uuid;

use crate::dispatch::{is_alive, Dispatch, Dispatches, Instance, RequestKind};
use crate::error::SyncError;
use crate::issue::{Cause, Issuer};
use crate::metrics::SyncMetrics;

pub use sms::settle_mt_messages;

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

fn backoff(attempts: i32) -> Duration {
    Duration::from_secs((2u64.saturating_pow(attempts.clamp(0, 8) as u32)).min(300))
}

fn metadata_uuid(event: &StoredEvent, field: &str) -> Option<Uuid> {
    event.metadata.get(field)?.as_str()?.parse().ok()
}
