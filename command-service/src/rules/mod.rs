//! Rules in the command API: the rules as the event store holds them ([`load_rules`]), what an
//! event tells a trigger ([`facts`]), the firing of one rule for one event ([`fire`]), the
//! engine that reads the log ([`engine`]) and the tables it owns ([`store`]).

pub mod engine;
pub mod store;

use std::time::Duration;

use domain::ids::{parse_quota_aggregate_id, Iccid, QuotaKind};
use domain::rule::{Facts, Rule, RuleAction, RuleCommand, RuleEvent, WebhookCause};
use domain::sim::{Sim, SimEvent};
use domain::Aggregate;
use eventstore::{
    CommandContext, EventMetadata, EventStore, GlobalLog, Idempotency, LogCursor, StoreError, StoredEvent,
};
use platform::ApiError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::actions::{Performed, SimAction};
use crate::state::AppState;

/// Rule events are not about a SIM: their `iccid` column (and NATS subject token) is this.
pub const RULES_ICCID: &str = "rules";

/// The rule engine's settings.
#[derive(Debug, Clone)]
pub struct RuleSettings {
    /// `RULE_ENGINE`, default true: this process runs the engine (replicas take turns under a
    /// lease).
    pub engine: bool,
    /// `RULE_ENGINE_POLL_MS`, default 500.
    pub poll: Duration,
    /// `RULE_ENGINE_LEASE_SECS`, default 30.
    pub lease: Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            engine: true,
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(30),
        }
    }
}

/// A rule as stored: its id, state and version, and where in the log it was last enabled.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub id: Uuid,
    pub rule: Rule,
    pub version: u64,
    /// The cursor just after its last `RuleEnabled`: it acts only on events after it, so
    /// enabling a rule never acts on what happened before (a dry run shows that).
    pub enabled_after: Option<LogCursor>,
}

impl StoredRule {
    /// Whether the rule is on for `event`: enabled, and enabled before it in the log.
    pub fn on_for(&self, event: &StoredEvent) -> bool {
        self.rule.enabled()
            && self
                .enabled_after
                .is_some_and(|after| LogCursor::after(event) > after)
    }
}

/// A rule from its events; `None` when it has none.
pub async fn load_rule(state: &AppState, id: Uuid) -> Result<Option<StoredRule>, ApiError> {
    let events = state.store.events_of(Rule::TYPE, &id.to_string()).await?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut rule = Rule::default();
    let mut enabled_after = None;
    for stored in &events {
        let event: RuleEvent = stored
            .to_domain()
            .map_err(|error| ApiError::internal(format!("rule {id}: undecodable event: {error}")))?;
        if matches!(event, RuleEvent::RuleEnabled {}) {
            enabled_after = Some(LogCursor::after(stored));
        }
        rule.apply(&event);
    }
    Ok(Some(StoredRule {
        id,
        rule,
        version: events.len() as u64,
        enabled_after,
    }))
}

/// Every rule that was ever created (deleted ones included), oldest first.
pub async fn load_rules(state: &AppState) -> Result<Vec<StoredRule>, ApiError> {
    let ids = GlobalLog::new(state.pool.clone())
        .aggregate_ids(Rule::TYPE)
        .await?;
    let mut rules = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(uuid) = id.parse() else { continue };
        if let Some(rule) = load_rule(state, uuid).await? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// The tags the event's SIM carried when the event happened: the SIM's own events up to it in
/// the log's order, replayed (not today's tags, nor the read model's, which may trail). None
/// for an event that names no SIM.
pub async fn tags_at(store: &EventStore, event: &StoredEvent) -> Result<Vec<String>, StoreError> {
    if Iccid::parse(&event.iccid).is_err() {
        return Ok(Vec::new());
    }
    let until = LogCursor::after(event);
    let mut sim = Sim::default();
    for stored in store.events_of(Sim::TYPE, &event.iccid).await? {
        if LogCursor::after(&stored) > until {
            continue;
        }
        let decoded: SimEvent = stored.to_domain().map_err(|source| StoreError::Decode {
            aggregate_type: stored.aggregate_type.clone(),
            aggregate_id: stored.aggregate_id.clone(),
            sequence: stored.sequence,
            source,
        })?;
        sim.apply(&decoded);
    }
    Ok(sim.tags().to_vec())
}

/// What `event` tells a trigger; the SIM's tags only when `with_tags` (a rule asks for a tag),
/// as they were at the event ([`tags_at`]): the engine and a dry run decide alike, whenever
/// they read the event.
pub async fn facts_of(
    state: &AppState,
    event: &StoredEvent,
    with_tags: bool,
) -> Result<OwnedFacts, ApiError> {
    let quota_kind = (event.aggregate_type == "quota")
        .then(|| {
            parse_quota_aggregate_id(&event.aggregate_id)
                .ok()
                .map(|(_, kind)| kind)
        })
        .flatten();
    let threshold = event
        .payload
        .get("threshold")
        .and_then(|t| t.as_u64())
        .map(|t| t.min(255) as u8);
    let tags = match with_tags {
        true => tags_at(&state.store, event).await?,
        false => Vec::new(),
    };
    Ok(OwnedFacts {
        event_type: event.event_type.clone(),
        quota_kind,
        threshold,
        tags,
    })
}

pub struct OwnedFacts {
    pub event_type: String,
    pub quota_kind: Option<QuotaKind>,
    pub threshold: Option<u8>,
    pub tags: Vec<String>,
}

impl OwnedFacts {
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            event_type: &self.event_type,
            quota_kind: self.quota_kind,
            threshold: self.threshold,
            tags: &self.tags,
        }
    }
}

/// Whether a rule could act on this event at all: rule events name no SIM, and events that
/// rules' own commands wrote do not fire rules (no chains, no loops such as "on
/// TopUpRequested, top up").
pub fn about_a_sim(event: &StoredEvent) -> bool {
    let by_a_rule = event
        .metadata
        .get("actor")
        .and_then(|actor| actor.as_str())
        .is_some_and(|actor| actor.starts_with("rule:"));
    event.aggregate_type != Rule::TYPE && !by_a_rule && Iccid::parse(&event.iccid).is_ok()
}

/// The command a rule's action is, for the event's SIM (`None` for a webhook).
pub fn sim_action(
    action: &RuleAction,
    trigger_kind: Option<QuotaKind>,
    facts: &OwnedFacts,
) -> Option<SimAction> {
    Some(match action {
        RuleAction::TopUp => SimAction::TopUp {
            kind: trigger_kind.or(facts.quota_kind).unwrap_or(QuotaKind::Data),
            payment_method: None,
        },
        RuleAction::Suspend => SimAction::Suspend,
        RuleAction::SendSms { text } => SimAction::SendSms {
            payload: text.clone(),
            source_address: None,
        },
        RuleAction::AddTag { tag } => SimAction::AddTags(vec![tag.clone()]),
        RuleAction::Webhook { .. } => return None,
    })
}

/// The id of an event (the NATS message id), and as a UUID for `causation_id`.
pub fn event_ids(event: &StoredEvent) -> (String, Uuid) {
    let id = relay::wire::message_id(event);
    let uuid = derived_id(&format!("event:{id}"));
    (id, uuid)
}

/// A UUID derived from `name` (the first 16 bytes of its SHA-256): the same name, the same id.
pub fn derived_id(name: &str) -> Uuid {
    let digest = Sha256::digest(name);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// How one firing ended.
pub struct Fired {
    pub outcome: &'static str,
    pub code: Option<String>,
    pub message: Option<String>,
    pub command_id: Option<Uuid>,
    pub command_position: Option<i64>,
}

/// Issues the rule's command for `event`: on behalf of the rule, caused by the event, with an
/// idempotency key of (rule, event), so a firing repeated after a crash is answered as the
/// first and never applied twice. `Err` when it should be tried again (the store is away).
pub async fn fire(
    state: &AppState,
    rule: &StoredRule,
    event: &StoredEvent,
    facts: &OwnedFacts,
) -> Result<Fired, ApiError> {
    let Some(spec) = rule.rule.spec() else {
        return Err(ApiError::not_found(
            "RULE_NOT_FOUND",
            "the rule has no definition",
        ));
    };
    let iccid = Iccid::parse(&event.iccid).map_err(|e| crate::error::domain_error(&e))?;
    let (event_id, causation) = event_ids(event);
    let mut metadata = EventMetadata::new(format!("rule:{}", rule.id));
    metadata.causation_id = causation;
    if let Some(correlation) = event
        .metadata
        .get("correlation_id")
        .and_then(|c| c.as_str())
        .and_then(|c| c.parse().ok())
    {
        metadata.correlation_id = correlation;
    }
    let ctx = CommandContext {
        metadata,
        expected_version: None,
        idempotency: Some(Idempotency {
            scope: format!("rule:{}", rule.id),
            key: event_id.clone(),
            request_hash: crate::commands::fingerprint(&(rule.id, &event_id)),
            response_status: 202,
        }),
    };
    let Some(action) = sim_action(&spec.action, spec.trigger.quota_kind, facts) else {
        return request_webhook(state, rule, event, &event_id, &ctx).await;
    };
    match action.perform(state, &iccid, &ctx, false).await {
        Ok(Performed::Executed { executed, .. }) => {
            let answer = executed.answer();
            Ok(Fired {
                outcome: "applied",
                code: None,
                message: None,
                command_id: Some(answer.command_id),
                command_position: Some(answer.position),
            })
        }
        Ok(Performed::WouldApply { .. }) => Ok(Fired {
            outcome: "applied",
            code: None,
            message: None,
            command_id: None,
            command_position: None,
        }),
        Err(error) if error.status.is_server_error() => Err(error),
        Err(error) => Ok(Fired {
            outcome: if error.code == "CONCURRENCY_CONFLICT" {
                "failed"
            } else {
                "refused"
            },
            code: Some(error.code.into_owned()),
            message: Some(error.message),
            command_id: None,
            command_position: None,
        }),
    }
}

/// A webhook action: `RuleWebhookRequested` on the rule, written with the firing's idempotency
/// key (once per (rule, event), also after a crash), delivered by the subscription's dispatcher
/// with its signature, retries and delivery log. Refused (`WEBHOOK_NOT_FOUND`) when the
/// subscription is gone.
async fn request_webhook(
    state: &AppState,
    rule: &StoredRule,
    event: &StoredEvent,
    event_id: &str,
    ctx: &CommandContext,
) -> Result<Fired, ApiError> {
    let refused = |code: &str, message: String| Fired {
        outcome: "refused",
        code: Some(code.to_owned()),
        message: Some(message),
        command_id: None,
        command_position: None,
    };
    if let Some(RuleAction::Webhook { webhook_id }) = rule.rule.spec().map(|spec| &spec.action) {
        if webhooks::Webhooks::new(state.pool.clone())
            .get(*webhook_id)
            .await?
            .is_none()
        {
            return Ok(refused(
                "WEBHOOK_NOT_FOUND",
                format!("no webhook subscription {webhook_id}"),
            ));
        }
    }
    let cause = WebhookCause {
        event_id: event_id.to_owned(),
        position: event.position,
        event_type: event.event_type.clone(),
        iccid: event.iccid.clone(),
        event: serde_json::to_value(event).map_err(|e| ApiError::internal(e.to_string()))?,
    };
    match state
        .store
        .execute::<Rule>(
            &rule.id.to_string(),
            RULES_ICCID,
            RuleCommand::RequestWebhook { cause },
            ctx,
        )
        .await
    {
        Ok(executed) => {
            let answer = executed.answer();
            Ok(Fired {
                outcome: "applied",
                code: None,
                message: None,
                command_id: Some(answer.command_id),
                command_position: Some(answer.position),
            })
        }
        Err(error) => {
            let error = crate::error::execute_error(error);
            if error.status.is_server_error() {
                return Err(error);
            }
            Ok(refused(&error.code, error.message))
        }
    }
}
