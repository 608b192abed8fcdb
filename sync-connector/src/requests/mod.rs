//! Operator requests carried out at 1NCE: activation, suspension, label and IMEI lock, top-up
//! and MT SMS.
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
//! the claim on a dispatch record, the settling of a request on its aggregate (and the last
//! steps every request ends with: settle, close the record, count), what a failed call of a
//! non-idempotent request means, and the retry helpers. The request kinds are in `status`
//! (activation, suspension), `provider_update` (label and IMEI lock), `top_up` and `sms` (MT
//! messages and their delivery reports).

mod controls;
mod provider_limits;
mod provider_update;
mod sms;
mod status;
mod top_up;

use std::time::Duration;

use domain::{AccountLimits, AccountLimitsEvent, Aggregate, Iccid, QuotaEvent, SimEvent, SmsEvent};
use eventstore::StoredEvent;
use once_client::{ClientError, OnceClient, Priority};
use serde_json::Value;
use uuid::Uuid;

use crate::dispatch::{is_alive, Dispatch, Dispatches, Instance, RequestKind};
use crate::error::SyncError;
use crate::issue::{Cause, Issuer};
use crate::metrics::SyncMetrics;

pub use sms::settle_mt_messages;

/// Redelivery soon: another instance holds the request, or a call may simply be repeated.
const RETRY_SOON: Disposition = Disposition::RetryLater(Duration::from_secs(5));

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
        let cause = Cause {
            correlation_id: metadata_uuid(event, "correlation_id"),
            causation_id: metadata_uuid(event, "command_id"),
        };
        // The account's limits are no SIM's: their events carry the account's token.
        if event.aggregate_type == AccountLimits::TYPE {
            return match decode::<AccountLimitsEvent>(event)? {
                AccountLimitsEvent::AccountLimitsChangeRequested {
                    request_id, limits, ..
                } => {
                    let request = Request {
                        kind: RequestKind::Limits,
                        id: request_id,
                        aggregate_id: &event.aggregate_id,
                        token: &event.iccid,
                        iccid: None,
                        cause,
                    };
                    self.change_limits(request, limits).await
                }
                _ => Ok(Disposition::Done),
            };
        }
        let iccid = Iccid::parse(&event.iccid).map_err(|e| SyncError::decode("the event's ICCID", e))?;
        let sim_request = |kind, id| Request::new(kind, id, iccid.as_str(), &iccid, cause);
        match event.aggregate_type.as_str() {
            "sim" => match decode::<SimEvent>(event)? {
                SimEvent::ActivationRequested { request_id, .. } => {
                    self.status_change(sim_request(RequestKind::Activation, request_id))
                        .await
                }
                SimEvent::SuspensionRequested { request_id, .. } => {
                    self.status_change(sim_request(RequestKind::Suspension, request_id))
                        .await
                }
                SimEvent::ProviderUpdateRequested { request_id, .. } => {
                    self.provider_update(sim_request(RequestKind::ProviderUpdate, request_id))
                        .await
                }
                SimEvent::ConnectivityResetRequested { request_id, .. } => {
                    self.connectivity_reset(sim_request(RequestKind::ConnectivityReset, request_id))
                        .await
                }
                SimEvent::AutoTopUpChangeRequested { request_id, .. } => {
                    self.auto_top_up(sim_request(RequestKind::AutoTopUp, request_id))
                        .await
                }
                _ => Ok(Disposition::Done),
            },
            "quota" => match decode::<QuotaEvent>(event)? {
                QuotaEvent::TopUpRequested {
                    request_id,
                    kind,
                    payment_method,
                    ..
                } => {
                    let request =
                        Request::new(RequestKind::TopUp, request_id, &event.aggregate_id, &iccid, cause);
                    self.top_up(request, kind, payment_method).await
                }
                _ => Ok(Disposition::Done),
            },
            "sms" => match decode::<SmsEvent>(event)? {
                SmsEvent::SmsSendRequested {
                    message_id,
                    payload,
                    source_address,
                    encoding,
                    ..
                } => {
                    let aggregate_id = message_id.to_string();
                    let request = Request::new(RequestKind::Sms, message_id, &aggregate_id, &iccid, cause);
                    self.send_sms(request, payload, source_address, encoding).await
                }
                _ => Ok(Disposition::Done),
            },
            _ => Ok(Disposition::Done),
        }
    }

    /// The request's dispatch record, created `pending` when there is none yet.
    async fn open_record(&self, request: &Request<'_>) -> Result<Dispatch, SyncError> {
        Ok(self
            .dispatches
            .open(request.id, request.kind, request.aggregate_id, request.token)
            .await?)
    }

    /// Who may work on the dispatch now: `Some(record)` for this instance, `None` when it is
    /// settled or another live instance is on it.
    async fn claim(&self, request: &Request<'_>) -> Result<Claim, SyncError> {
        let (kind, request_id) = (request.kind, request.id);
        let record = self.open_record(request).await?;
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

    /// Commits "this instance is about to call the provider" with what the reconciliation of a
    /// lost answer needs; false when another instance got there first.
    async fn mark_dispatching(&self, request: &Request<'_>, before_call: &Value) -> Result<bool, SyncError> {
        Ok(self
            .dispatches
            .mark_dispatching(request.id, self.instance, before_call)
            .await?)
    }

    /// What a failed call of a request the provider takes no idempotency key for (top-up, SMS)
    /// means: the provider refused it, it certainly did not take effect (the dispatch goes back
    /// to `pending` for a later attempt), or its answer was lost and the provider's state must
    /// tell.
    async fn failed_call(&self, request: &Request<'_>, error: ClientError) -> Result<FailedCall, SyncError> {
        let (request_id, kind) = (request.id, request.kind.as_str());
        if error.outcome_unknown() {
            tracing::warn!(%error, %request_id, kind, "outcome unknown; reconciling with the provider's state");
            return Ok(FailedCall::OutcomeUnknown(self.open_record(request).await?));
        }
        if is_refusal(&error) {
            return Ok(FailedCall::Refused(error.to_string()));
        }
        tracing::warn!(%error, %request_id, kind, "not carried out (the provider did not take it); will retry");
        self.dispatches.release(request_id).await?;
        Ok(FailedCall::NotTaken)
    }

    /// The aggregate no longer has the request pending (it was settled before a crash let the
    /// record be updated): closes the record, nothing left to do.
    async fn close_settled(&self, request: &Request<'_>) -> Result<Disposition, SyncError> {
        self.dispatches.close_settled(request.id).await?;
        Ok(Disposition::Done)
    }

    /// Issues a confirming command; a refusal means the request was settled meanwhile (e.g.
    /// by an earlier attempt that crashed before updating its record), which is fine.
    async fn settle<A>(&self, request: &Request<'_>, commands: Vec<A::Command>) -> Result<(), SyncError>
    where
        A: domain::Aggregate,
        A::Command: Clone,
    {
        let request_id = request.id;
        match self
            .issuer
            .issue_on::<A>(
                request.aggregate_id,
                request.token,
                commands,
                &("settle", request_id),
                request.cause,
            )
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

    /// The last steps of every request: settles it on its aggregate with `commands`, ends its
    /// dispatch record as `state` (`completed`, `failed` or `unknown`) with `outcome`, and counts
    /// it under that state.
    async fn finish<A>(
        &self,
        request: &Request<'_>,
        commands: Vec<A::Command>,
        state: &'static str,
        outcome: &str,
        provider_ref: Option<&str>,
    ) -> Result<Disposition, SyncError>
    where
        A: domain::Aggregate,
        A::Command: Clone,
    {
        self.settle::<A>(request, commands).await?;
        self.dispatches
            .finish(request.id, state, outcome, provider_ref)
            .await?;
        self.metrics.request(request.kind.as_str(), state);
        Ok(Disposition::Done)
    }
}

/// One operator request being carried out: its kind and id, the aggregate that settles it
/// and the token its events carry (the SIM's ICCID, or the account's), the SIM it is about
/// (none for the account's limits), and the cause (the requesting event) its confirmation
/// carries.
struct Request<'a> {
    kind: RequestKind,
    id: Uuid,
    aggregate_id: &'a str,
    token: &'a str,
    iccid: Option<&'a Iccid>,
    cause: Cause,
}

impl<'a> Request<'a> {
    fn new(kind: RequestKind, id: Uuid, aggregate_id: &'a str, iccid: &'a Iccid, cause: Cause) -> Self {
        Self {
            kind,
            id,
            aggregate_id,
            token: iccid.as_str(),
            iccid: Some(iccid),
            cause,
        }
    }

    /// The SIM of a SIM's request.
    fn sim(&self) -> Result<&'a Iccid, SyncError> {
        self.iccid.ok_or_else(|| {
            SyncError::decode(
                "the request's SIM",
                format!("{} is no SIM's request", self.kind.as_str()),
            )
        })
    }
}

enum Claim {
    Fresh(Dispatch),
    Reconcile(Dispatch),
    Busy,
    Settled,
}

/// See [`Requests::failed_call`].
enum FailedCall {
    /// The provider refused the request: it failed, for this reason.
    Refused(String),
    /// Not taken; released for a later attempt.
    NotTaken,
    /// The answer was lost: reconcile with the provider's state, from this record.
    OutcomeUnknown(Dispatch),
}

/// The provider refused the request itself (4xx other than 429): retrying cannot help.
fn is_refusal(error: &ClientError) -> bool {
    matches!(error, ClientError::Rejected { .. } | ClientError::NotFound { .. })
}

fn backoff(attempts: i32) -> Duration {
    Duration::from_secs((2u64.saturating_pow(attempts.clamp(0, 8) as u32)).min(300))
}

/// The domain event a stored event carries.
fn decode<E: domain::DomainEvent>(event: &StoredEvent) -> Result<E, SyncError> {
    event
        .to_domain::<E>()
        .map_err(|e| SyncError::decode(format!("event {}", event.event_type), e))
}

fn metadata_uuid(event: &StoredEvent, field: &str) -> Option<Uuid> {
    event.metadata.get(field)?.as_str()?.parse().ok()
}
