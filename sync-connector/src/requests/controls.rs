//! Provider controls: connectivity reset, auto top-up on/off and the account's self-set limits.
//!
//! - **Reset** (`POST /v1/sims/{iccid}/reset`) is not idempotent (a second call resets again)
//!   and 1NCE takes no idempotency key, so it is sent at most once: the number of the SIM's
//!   provider events is recorded before the call, and after a lost answer or a crash the
//!   newest events are searched for the reset; found → completed, otherwise unknown (never
//!   sent again). 1NCE answers once the reset is queued, so completed means queued.
//! - **Auto top-up** and **limits** set a state, so they are sent again while the answer is in
//!   doubt, up to `MAX_ATTEMPTS` (after that: unknown when the last answer was lost, failed
//!   when 1NCE certainly did not take it). Limits are also read back (`GET /v1/sims/limits`)
//!   after a crash: when 1NCE shows the ids the change completed.
//!
//! Only the newest pending request is carried out; one no longer pending (superseded or
//! settled) is closed without a call.

use chrono::Utc;
use domain::limits::{AccountLimits, AccountLimitsCommand, LimitIds};
use domain::{ControlOutcome, Sim, SimCommand, SimControl};
use once_client::{ClientError, SetLimits};
use serde_json::json;

use super::{backoff, is_refusal, Claim, Disposition, FailedCall, Request, Requests, RETRY_SOON};
use crate::dispatch::Dispatch;
use crate::error::SyncError;

/// Attempts of a state-setting control before it is recorded as failed (or unknown).
const MAX_ATTEMPTS: i32 = 20;
/// How many of the newest provider events are searched for a reset after a lost answer.
const RESET_SEARCH: u64 = 200;

/// The outcome of a settled attempt, in the words of the dispatch record.
fn state_of(outcome: &ControlOutcome) -> (&'static str, String) {
    match outcome {
        ControlOutcome::Completed => ("completed", "completed".to_owned()),
        ControlOutcome::Failed { reason } => ("failed", reason.clone()),
        ControlOutcome::Unknown { reason } => ("unknown", reason.clone()),
    }
}

impl Requests {
    pub(super) async fn connectivity_reset(&self, request: Request<'_>) -> Result<Disposition, SyncError> {
        let iccid = request.sim()?;
        if !self
            .sim_has_pending(&request, SimControl::ConnectivityReset)
            .await?
        {
            return self.close_settled(&request).await;
        }
        match self.claim(&request).await? {
            Claim::Settled => Ok(Disposition::Done),
            Claim::Busy => Ok(RETRY_SOON),
            Claim::Reconcile(record) => self.reconcile_reset(&request, &record).await,
            Claim::Fresh(record) => {
                // How many events the provider has before the call, to recognise the reset.
                let before = match self.client.sim_events(iccid.as_str(), 1, 1).await {
                    Ok(page) => page.total_events,
                    Err(error) if is_refusal(&error) => {
                        let failed = ControlOutcome::Failed {
                            reason: error.to_string(),
                        };
                        return self
                            .settle_sim_control(&request, SimControl::ConnectivityReset, failed)
                            .await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, request_id = %request.id, "cannot read the SIM's events before a reset; will retry");
                        return Ok(Disposition::RetryLater(backoff(record.attempts)));
                    }
                };
                if !self
                    .mark_dispatching(&request, &json!({ "total_events": before }))
                    .await?
                {
                    return Ok(RETRY_SOON);
                }
                let outcome = match self.client.reset_connectivity(iccid.as_str()).await {
                    Ok(()) => ControlOutcome::Completed,
                    Err(error) => match self.failed_call(&request, error).await? {
                        FailedCall::Refused(reason) => ControlOutcome::Failed { reason },
                        FailedCall::NotTaken => return Ok(RETRY_SOON),
                        FailedCall::OutcomeUnknown(record) => {
                            return self.reconcile_reset(&request, &record).await
                        }
                    },
                };
                self.settle_sim_control(&request, SimControl::ConnectivityReset, outcome)
                    .await
            }
        }
    }

    /// After a lost answer or a crash: a reset event among the provider's events recorded
    /// since the call was about to be made means the reset was queued.
    async fn reconcile_reset(
        &self,
        request: &Request<'_>,
        record: &Dispatch,
    ) -> Result<Disposition, SyncError> {
        let iccid = request.sim()?;
        let before = record
            .before_call
            .as_ref()
            .and_then(|v| v["total_events"].as_u64());
        let outcome = match before {
            None => ControlOutcome::Unknown {
                reason: "no record of the provider's events before the reset".into(),
            },
            Some(before) => {
                let newest = match self.client.sim_events_sorted(iccid.as_str(), 1, 1, None).await {
                    Ok(page) => page.total_events.saturating_sub(before),
                    Err(error) => {
                        tracing::warn!(%error, request_id = %request.id, "cannot read the SIM's events to reconcile a reset; will retry");
                        return Ok(RETRY_SOON);
                    }
                };
                let found = newest > 0
                    && match self
                        .client
                        .sim_events_sorted(
                            iccid.as_str(),
                            1,
                            newest.min(RESET_SEARCH) as u32,
                            Some("-timestamp"),
                        )
                        .await
                    {
                        Ok(page) => page.events.iter().any(|e| {
                            e.event_type
                                .as_deref()
                                .is_some_and(|t| t.to_ascii_lowercase().contains("reset"))
                        }),
                        Err(error) => {
                            tracing::warn!(%error, request_id = %request.id, "cannot read the SIM's events to reconcile a reset; will retry");
                            return Ok(RETRY_SOON);
                        }
                    };
                if found {
                    ControlOutcome::Completed
                } else {
                    ControlOutcome::Unknown {
                        reason: "the reset's answer was lost and the provider's events do not show it".into(),
                    }
                }
            }
        };
        self.settle_sim_control(request, SimControl::ConnectivityReset, outcome)
            .await
    }

    pub(super) async fn auto_top_up(&self, request: Request<'_>) -> Result<Disposition, SyncError> {
        let iccid = request.sim()?;
        let sim = self.issuer.store().load::<Sim>(iccid.as_str()).await?.state;
        let Some(enabled) = sim
            .controls()
            .pending(SimControl::AutoTopUp)
            .filter(|p| p.request_id == request.id)
            .and_then(|p| p.enabled)
        else {
            return self.close_settled(&request).await;
        };
        let record = match self.claim(&request).await? {
            Claim::Settled => return Ok(Disposition::Done),
            Claim::Busy => return Ok(RETRY_SOON),
            Claim::Fresh(record) => {
                if !self.mark_dispatching(&request, &json!({})).await? {
                    return Ok(RETRY_SOON);
                }
                record
            }
            // A state is set: sending it again is harmless.
            Claim::Reconcile(record) => record,
        };
        let result = self.client.set_auto_top_up(&[iccid.as_str()], enabled).await;
        match self.state_call_outcome(&request, &record, result).await? {
            Some(outcome) => {
                self.settle_sim_control(&request, SimControl::AutoTopUp, outcome)
                    .await
            }
            None => Ok(Disposition::RetryLater(backoff(record.attempts))),
        }
    }

    pub(super) async fn change_limits(
        &self,
        request: Request<'_>,
        limits: LimitIds,
    ) -> Result<Disposition, SyncError> {
        let account = self
            .issuer
            .store()
            .load::<AccountLimits>(request.aggregate_id)
            .await?
            .state;
        if account.pending().is_none_or(|p| p.request_id != request.id) {
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
            Claim::Reconcile(record) => {
                if self.provider_has_limits(&limits).await {
                    return self.settle_limits(&request, ControlOutcome::Completed).await;
                }
                record
            }
        };
        let set = SetLimits {
            data_limit_id: limits.data_limit_id,
            sms_mt_limit_id: limits.sms_mt_limit_id,
            sms_mo_limit_id: limits.sms_mo_limit_id,
        };
        let result = self.client.set_limits(&set).await;
        match self.state_call_outcome(&request, &record, result).await? {
            Some(outcome) => self.settle_limits(&request, outcome).await,
            None => Ok(Disposition::RetryLater(backoff(record.attempts))),
        }
    }

    /// What a call that sets a state ended in: `None` to try again later (released).
    async fn state_call_outcome(
        &self,
        request: &Request<'_>,
        record: &Dispatch,
        result: Result<(), ClientError>,
    ) -> Result<Option<ControlOutcome>, SyncError> {
        let error = match result {
            Ok(()) => return Ok(Some(ControlOutcome::Completed)),
            Err(error) => error,
        };
        let reason = error.to_string();
        if is_refusal(&error) {
            return Ok(Some(ControlOutcome::Failed { reason }));
        }
        if record.attempts + 1 >= MAX_ATTEMPTS {
            return Ok(Some(if error.outcome_unknown() {
                ControlOutcome::Unknown { reason }
            } else {
                ControlOutcome::Failed { reason }
            }));
        }
        tracing::warn!(%error, request_id = %request.id, kind = request.kind.as_str(), "not carried out yet; will retry");
        self.dispatches.release(request.id).await?;
        Ok(None)
    }

    /// Whether 1NCE's current limits have every id the change sets (false when unreadable).
    async fn provider_has_limits(&self, limits: &LimitIds) -> bool {
        match self.client.limits().await {
            Ok(current) => {
                let id = |l: &Option<once_client::Limit>| l.as_ref().and_then(|l| l.id);
                let same = |want: Option<u64>, have: Option<u64>| want.is_none() || want == have;
                same(limits.data_limit_id, id(&current.data))
                    && same(limits.sms_mt_limit_id, id(&current.sms_mt))
                    && same(limits.sms_mo_limit_id, id(&current.sms_mo))
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the limits back to settle a change");
                false
            }
        }
    }

    async fn sim_has_pending(&self, request: &Request<'_>, control: SimControl) -> Result<bool, SyncError> {
        let sim = self
            .issuer
            .store()
            .load::<Sim>(request.sim()?.as_str())
            .await?
            .state;
        Ok(sim
            .controls()
            .pending(control)
            .is_some_and(|p| p.request_id == request.id))
    }

    async fn settle_sim_control(
        &self,
        request: &Request<'_>,
        control: SimControl,
        outcome: ControlOutcome,
    ) -> Result<Disposition, SyncError> {
        let (state, text) = state_of(&outcome);
        let command = SimCommand::SettleControl {
            control,
            request_id: request.id,
            outcome,
            at: Utc::now(),
        };
        self.finish::<Sim>(request, vec![command], state, &text, None)
            .await
    }

    async fn settle_limits(
        &self,
        request: &Request<'_>,
        outcome: ControlOutcome,
    ) -> Result<Disposition, SyncError> {
        // What 1NCE has now, for the command API's view: read before the settlement is
        // recorded, so a reader who sees the outcome sees the limits that go with it.
        if let Err(error) = self.read_provider_limits().await {
            tracing::warn!(%error, "could not read 1NCE's limits after a change");
        }
        let (state, text) = state_of(&outcome);
        let command = AccountLimitsCommand::Settle {
            request_id: request.id,
            outcome,
            at: Utc::now(),
        };
        self.finish::<AccountLimits>(request, vec![command], state, &text, None)
            .await
    }
}
