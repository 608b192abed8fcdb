//! The rule aggregate (aggregate id = the rule's UUID): "on event type X (optionally for SIMs
//! with a tag, a quota kind, a threshold) do Y", where Y is a command on the SIM or its quota.
//! Rules are event-sourced like the SIM, so who changed what and when is their history (the
//! actor and time are in every event's metadata). A rule is created disabled: it can be tried
//! over the past (a dry run) before it is switched on.
//!
//! [`Trigger::matches`] is the one decision of whether an event fires a rule; the command
//! API's engine and its dry run both use it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::QuotaKind;
use crate::sim::normalise_tags;
use crate::sms::sms_encoding;
use crate::Aggregate;

#[cfg(test)]
mod tests;

/// When a rule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event type, e.g. `QuotaThresholdCrossed`.
    pub event_type: String,
    /// Only for SIMs that carry this tag (when the event is handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only for this quota (events of the quota aggregate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_kind: Option<QuotaKind>,
    /// Only for this threshold in percent (`QuotaThresholdCrossed`: 80 or 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u8>,
}

/// What a rule does to the event's SIM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// The standard top-up of the quota named by `Trigger::quota_kind`, else of the event's
    /// quota, else of the data quota.
    TopUp,
    Suspend,
    SendSms {
        text: String,
    },
    AddTag {
        tag: String,
    },
    /// A POST to a webhook subscription (its URL, secret, retries and delivery log): the
    /// engine records `RuleWebhookRequested` on the rule and that subscription's dispatcher
    /// delivers it.
    Webhook {
        webhook_id: Uuid,
    },
}

impl RuleAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleAction::TopUp => "top_up",
            RuleAction::Suspend => "suspend",
            RuleAction::SendSms { .. } => "send_sms",
            RuleAction::AddTag { .. } => "add_tag",
            RuleAction::Webhook { .. } => "webhook",
        }
    }
}

/// A rule's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub trigger: Trigger,
    pub action: RuleAction,
}

/// What an event tells a trigger: its type, and what the event or its SIM says.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub event_type: &'a str,
    pub quota_kind: Option<QuotaKind>,
    pub threshold: Option<u8>,
    pub tags: &'a [String],
}

impl Trigger {
    /// Whether an event with these facts fires the rule.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        self.event_type == facts.event_type
            && self.quota_kind.is_none_or(|kind| facts.quota_kind == Some(kind))
            && self
                .threshold
                .is_none_or(|threshold| facts.threshold == Some(threshold))
            && self.tag.as_ref().is_none_or(|tag| facts.tags.contains(tag))
    }
}

impl RuleSpec {
    /// The definition, checked and normalised.
    pub fn checked(mut self) -> Result<Self, RuleError> {
        let invalid = |reason: &str| Err(RuleError::Invalid(reason.to_owned()));
        self.name = self.name.trim().to_owned();
        if !(1..=100).contains(&self.name.chars().count()) || self.name.chars().any(char::is_control) {
            return invalid("a name has 1 to 100 characters, no control characters");
        }
        let event_type = &self.trigger.event_type;
        if !(1..=100).contains(&event_type.len()) || !event_type.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid("trigger.event_type is an event type such as QuotaThresholdCrossed");
        }
        if let Some(threshold) = self.trigger.threshold {
            if event_type != "QuotaThresholdCrossed" || !(1..=100).contains(&threshold) {
                return invalid("trigger.threshold (1 to 100) is only for QuotaThresholdCrossed");
            }
        }
        if self.trigger.quota_kind.is_some() && !is_quota_event(event_type) {
            return invalid("trigger.quota_kind is only for quota events (Quota…, TopUp…)");
        }
        if let Some(tag) = &self.trigger.tag {
            normalise_tags(vec![tag.clone()]).map_err(|e| RuleError::Invalid(format!("trigger.tag: {e}")))?;
        }
        match &self.action {
            RuleAction::SendSms { text } => {
                if text.is_empty() {
                    return invalid("action.text of send_sms is empty");
                }
                sms_encoding(text).map_err(|e| RuleError::Invalid(format!("action.text: {e}")))?;
            }
            RuleAction::AddTag { tag } => {
                normalise_tags(vec![tag.clone()])
                    .map_err(|e| RuleError::Invalid(format!("action.tag: {e}")))?;
            }
            RuleAction::TopUp | RuleAction::Suspend | RuleAction::Webhook { .. } => {}
        }
        Ok(self)
    }
}

/// Quota events name their quota in the aggregate id (`<iccid>:<kind>`).
pub fn is_quota_event(event_type: &str) -> bool {
    event_type.starts_with("Quota") || event_type.starts_with("TopUp")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    id: Option<Uuid>,
    spec: Option<RuleSpec>,
    enabled: bool,
    deleted: bool,
}

impl Rule {
    pub fn exists(&self) -> bool {
        self.id.is_some() && !self.deleted
    }
    pub fn id(&self) -> Option<Uuid> {
        self.id
    }
    pub fn spec(&self) -> Option<&RuleSpec> {
        self.spec.as_ref()
    }
    pub fn enabled(&self) -> bool {
        self.enabled && !self.deleted
    }
    pub fn deleted(&self) -> bool {
        self.deleted
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum RuleCommand {
    Create {
        rule_id: Uuid,
        spec: RuleSpec,
    },
    Change {
        spec: RuleSpec,
    },
    Enable,
    Disable,
    Delete,
    /// The rule fired for `cause` and its action is a webhook: record the request for the
    /// dispatcher.
    RequestWebhook {
        cause: WebhookCause,
    },
}

/// The event a webhook firing is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookCause {
    /// `<aggregate_type>:<aggregate_id>:<sequence>` (the NATS message id, `X-Sim-Event-Id`).
    pub event_id: String,
    pub position: i64,
    pub event_type: String,
    pub iccid: String,
    /// The event as the log has it (the body a webhook subscription would get for it).
    pub event: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum RuleEvent {
    /// Created disabled.
    RuleCreated {
        rule_id: Uuid,
        spec: RuleSpec,
    },
    RuleChanged {
        spec: RuleSpec,
    },
    RuleEnabled {},
    RuleDisabled {},
    RuleDeleted {},
    /// The rule fired for an event and its action is the webhook subscription `webhook_id`:
    /// that subscription delivers this event (whatever its own filter). Once per (rule, event).
    RuleWebhookRequested {
        webhook_id: Uuid,
        cause: WebhookCause,
    },
}

impl_domain_event!(RuleEvent [RuleCreated, RuleChanged, RuleEnabled, RuleDisabled, RuleDeleted, RuleWebhookRequested]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid rule: {0}")]
    Invalid(String),
    #[error("rule not found")]
    NotFound,
    #[error("a rule with this id exists already")]
    AlreadyExists,
    #[error("the rule was deleted")]
    Deleted,
}

impl_domain_error!(RuleError {
    Invalid => "INVALID_RULE", Validation;
    NotFound => "RULE_NOT_FOUND", NotFound;
    AlreadyExists => "RULE_ALREADY_EXISTS", Conflict;
    Deleted => "RULE_DELETED", Gone;
});

impl Rule {
    /// The rule as it stands, for every command but `Create`.
    fn existing(&self) -> Result<&RuleSpec, RuleError> {
        match (&self.spec, self.deleted) {
            (_, true) => Err(RuleError::Deleted),
            (Some(spec), false) => Ok(spec),
            (None, false) => Err(RuleError::NotFound),
        }
    }
}

impl Aggregate for Rule {
    const TYPE: &'static str = "rule";
    type Command = RuleCommand;
    type Event = RuleEvent;
    type Error = RuleError;

    fn handle(&self, command: RuleCommand) -> Result<Vec<RuleEvent>, RuleError> {
        match command {
            RuleCommand::Create { rule_id, spec } => {
                if self.id.is_some() {
                    return Err(RuleError::AlreadyExists);
                }
                Ok(vec![RuleEvent::RuleCreated {
                    rule_id,
                    spec: spec.checked()?,
                }])
            }
            RuleCommand::Change { spec } => {
                let current = self.existing()?;
                let spec = spec.checked()?;
                // Saving the same definition again records nothing.
                Ok(if &spec == current {
                    vec![]
                } else {
                    vec![RuleEvent::RuleChanged { spec }]
                })
            }
            RuleCommand::Enable => {
                self.existing()?;
                Ok(if self.enabled {
                    vec![]
                } else {
                    vec![RuleEvent::RuleEnabled {}]
                })
            }
            RuleCommand::Disable => {
                self.existing()?;
                Ok(if self.enabled {
                    vec![RuleEvent::RuleDisabled {}]
                } else {
                    vec![]
                })
            }
            RuleCommand::Delete => {
                self.existing()?;
                Ok(vec![RuleEvent::RuleDeleted {}])
            }
            RuleCommand::RequestWebhook { cause } => match &self.existing()?.action {
                RuleAction::Webhook { webhook_id } => Ok(vec![RuleEvent::RuleWebhookRequested {
                    webhook_id: *webhook_id,
                    cause,
                }]),
                _ => Err(RuleError::Invalid("the rule's action is not a webhook".into())),
            },
        }
    }

    /// A firing changes nothing an operator edits: an `If-Match` of the version before it holds.
    fn is_settlement(event: &RuleEvent) -> bool {
        matches!(event, RuleEvent::RuleWebhookRequested { .. })
    }

    fn apply(&mut self, event: &RuleEvent) {
        match event {
            RuleEvent::RuleCreated { rule_id, spec } => {
                self.id = Some(*rule_id);
                self.spec = Some(spec.clone());
                self.enabled = false;
            }
            RuleEvent::RuleChanged { spec } => self.spec = Some(spec.clone()),
            RuleEvent::RuleEnabled {} => self.enabled = true,
            RuleEvent::RuleDisabled {} => self.enabled = false,
            RuleEvent::RuleDeleted {} => {
                self.deleted = true;
                self.enabled = false;
            }
            RuleEvent::RuleWebhookRequested { .. } => {}
        }
    }
}
