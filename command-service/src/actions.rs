//! What can be done to one SIM, once: the single-SIM routes and the bulk jobs' worker both
//! perform a [`SimAction`] here, so a SIM in a bulk job is refused with the same code as the
//! same command on its own route. A dry run loads the aggregate and lets it decide, without
//! appending: what would happen from the current state.

use domain::ids::{quota_aggregate_id, Iccid, Imsi, Msisdn, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use domain::sim::{Sim, SimCommand, SimError, SimEvent, SimStatus};
use domain::sms::{Sms, SmsCommand};
use domain::Aggregate;
use eventstore::{handle_in_turn, CommandContext, Executed};
use platform::ApiError;
use uuid::Uuid;

use crate::error::{domain_error, execute_error};
use crate::state::AppState;

/// One command on one SIM.
#[derive(Debug, Clone)]
pub enum SimAction {
    Register {
        imsi: Imsi,
        msisdn: Option<Msisdn>,
        label: Option<String>,
        tags: Vec<String>,
    },
    /// Outer `None` leaves a field alone; `label: Some(None)` clears the label.
    Update {
        label: Option<Option<String>>,
        tags: Option<Vec<String>>,
        imei_lock: Option<bool>,
    },
    AddTags(Vec<String>),
    RemoveTags(Vec<String>),
    Activate,
    Suspend,
    Terminate,
    TopUp {
        kind: QuotaKind,
        payment_method: Option<String>,
    },
    SendSms {
        payload: String,
        source_address: Option<String>,
    },
    /// A connectivity reset at 1NCE.
    ResetConnectivity,
    /// Auto top-up on or off at 1NCE.
    SetAutoTopUp {
        enabled: bool,
    },
}

/// What performing an action did.
#[derive(Debug, Clone)]
pub enum Performed {
    Executed {
        executed: Executed,
        aggregate_type: &'static str,
        /// Carried out at the provider (see [`Performed::request_id`]).
        at_provider: bool,
    },
    /// Dry run: the aggregate would accept it, writing this many events.
    WouldApply { events: usize },
}

impl Performed {
    /// The provider request's id (an activation's, suspension's or top-up's: the command's
    /// id; an SMS's: its message id), from the answer, which a replayed idempotency key
    /// answers as the first time.
    pub fn request_id(&self) -> Option<Uuid> {
        match self {
            Self::Executed {
                executed,
                aggregate_type,
                at_provider: true,
            } => {
                let answer = executed.answer();
                if *aggregate_type == Sms::TYPE {
                    answer.aggregate_id.parse().ok()
                } else {
                    Some(answer.command_id)
                }
            }
            _ => None,
        }
    }
}

impl SimAction {
    /// Performs the action on `iccid` with `ctx` (its metadata, expected version and
    /// idempotency key), or with `dry_run` only decides it.
    pub async fn perform(
        &self,
        state: &AppState,
        iccid: &Iccid,
        ctx: &CommandContext,
        dry_run: bool,
    ) -> Result<Performed, ApiError> {
        let at = ctx.metadata.occurred_at;
        let request_id = ctx.metadata.command_id;
        let decide = Decide {
            state,
            iccid,
            ctx,
            dry_run,
        };
        match self {
            Self::Register {
                imsi,
                msisdn,
                label,
                tags,
            } => {
                let command = SimCommand::Register {
                    iccid: iccid.clone(),
                    imsi: imsi.clone(),
                    msisdn: msisdn.clone(),
                    label: label.clone(),
                    tags: tags.clone(),
                    at,
                };
                decide.sim(false, move |sim| sim.handle(command.clone())).await
            }
            Self::Update {
                label,
                tags,
                imei_lock,
            } => {
                let mut commands = Vec::new();
                if label.is_some() || tags.is_some() {
                    commands.push(SimCommand::UpdateDetails {
                        label: label.clone(),
                        tags: tags.clone(),
                    });
                }
                if let Some(enabled) = imei_lock {
                    commands.push(SimCommand::SetImeiLock { enabled: *enabled });
                }
                decide
                    .sim(false, |sim| update_at_provider(sim, &commands, request_id, at))
                    .await
            }
            // Tags are changed against the SIM's tags as they are when the command is decided
            // (again after a lost race), so concurrent changes are not lost.
            Self::AddTags(added) => {
                decide
                    .sim(false, |sim| {
                        let mut tags = sim.tags().to_vec();
                        tags.extend(added.iter().filter(|t| !sim.tags().contains(t)).cloned());
                        update_tags(sim, tags)
                    })
                    .await
            }
            Self::RemoveTags(removed) => {
                decide
                    .sim(false, |sim| {
                        let tags = sim.tags().iter().filter(|t| !removed.contains(t)).cloned();
                        update_tags(sim, tags.collect())
                    })
                    .await
            }
            Self::Activate => {
                let command = SimCommand::RequestActivation { request_id, at };
                decide.sim(true, |sim| sim.handle(command.clone())).await
            }
            Self::Suspend => {
                let command = SimCommand::RequestSuspension { request_id, at };
                decide.sim(true, |sim| sim.handle(command.clone())).await
            }
            Self::ResetConnectivity => {
                let command = SimCommand::RequestConnectivityReset { request_id, at };
                decide.sim(true, |sim| sim.handle(command.clone())).await
            }
            Self::SetAutoTopUp { enabled } => {
                let command = SimCommand::RequestAutoTopUp {
                    request_id,
                    enabled: *enabled,
                    at,
                };
                decide.sim(true, |sim| sim.handle(command.clone())).await
            }
            Self::Terminate => {
                let command = SimCommand::Terminate { reason: None, at };
                decide.sim(false, |sim| sim.handle(command.clone())).await
            }
            Self::TopUp { kind, payment_method } => {
                let sim = existing_sim(state, iccid).await?;
                let volume = match kind {
                    QuotaKind::Data => state.topup.data_bytes,
                    QuotaKind::Sms => state.topup.sms,
                };
                let command = QuotaCommand::RequestTopUp {
                    request_id,
                    iccid: iccid.clone(),
                    kind: *kind,
                    volume: i64::try_from(volume).unwrap_or(i64::MAX),
                    payment_method: payment_method.clone(),
                    sim_status: sim.status(),
                    at,
                };
                let id = quota_aggregate_id(iccid, *kind);
                decide
                    .on::<Quota>(&id, true, |quota| quota.handle(command.clone()))
                    .await
            }
            Self::SendSms {
                payload,
                source_address,
            } => {
                let sim = existing_sim(state, iccid).await?;
                if sim.status() == SimStatus::Terminated {
                    return Err(domain_error(&SimError::Terminated));
                }
                // Each message is its own aggregate; a replayed Idempotency-Key answers the
                // first one's id.
                let message_id = Uuid::now_v7();
                let command = SmsCommand::RequestSend {
                    message_id,
                    iccid: iccid.clone(),
                    payload: payload.clone(),
                    source_address: source_address.clone(),
                    at,
                };
                decide
                    .on::<Sms>(&message_id.to_string(), true, |sms| sms.handle(command.clone()))
                    .await
            }
        }
    }
}

/// The details commands' events and, when they changed the label or the IMEI lock, the
/// provider update that carries both out at 1NCE (its id is the command's id).
fn update_at_provider(
    sim: &Sim,
    commands: &[SimCommand],
    request_id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<SimEvent>, SimError> {
    let events = handle_in_turn(sim, commands.to_vec())?;
    let at_provider = events.iter().any(|e| {
        matches!(
            e,
            SimEvent::SimLabelChanged { .. } | SimEvent::ImeiLockChanged { .. }
        )
    });
    if !at_provider {
        return Ok(events);
    }
    let mut all = commands.to_vec();
    all.push(SimCommand::RequestProviderUpdate { request_id, at });
    handle_in_turn(sim, all)
}

fn update_tags(sim: &Sim, tags: Vec<String>) -> Result<Vec<SimEvent>, SimError> {
    sim.handle(SimCommand::UpdateDetails {
        label: None,
        tags: Some(tags),
    })
}

/// The SIM a quota or SMS command is about, which must exist.
pub async fn existing_sim(state: &AppState, iccid: &Iccid) -> Result<Sim, ApiError> {
    let loaded = state.store.load::<Sim>(iccid.as_str()).await?;
    if !loaded.state.is_registered() {
        return Err(domain_error(&SimError::NotFound));
    }
    Ok(loaded.state)
}

/// Decides (and unless a dry run, executes) a command on one aggregate of the SIM.
struct Decide<'a> {
    state: &'a AppState,
    iccid: &'a Iccid,
    ctx: &'a CommandContext,
    dry_run: bool,
}

impl Decide<'_> {
    async fn sim(
        &self,
        at_provider: bool,
        decide: impl Fn(&Sim) -> Result<Vec<domain::sim::SimEvent>, SimError>,
    ) -> Result<Performed, ApiError> {
        self.on::<Sim>(self.iccid.as_str(), at_provider, decide).await
    }

    async fn on<A: Aggregate>(
        &self,
        aggregate_id: &str,
        at_provider: bool,
        decide: impl Fn(&A) -> Result<Vec<A::Event>, A::Error>,
    ) -> Result<Performed, ApiError> {
        if self.dry_run {
            let loaded = self.state.store.load::<A>(aggregate_id).await?;
            let events = decide(&loaded.state).map_err(|error| domain_error(&error))?;
            return Ok(Performed::WouldApply { events: events.len() });
        }
        let executed = self
            .state
            .store
            .execute_with::<A, _>(aggregate_id, self.iccid.as_str(), self.ctx, decide)
            .await
            .map_err(execute_error)?;
        Ok(Performed::Executed {
            executed,
            aggregate_type: A::TYPE,
            at_provider,
        })
    }
}
