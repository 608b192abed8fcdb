//! What a bulk job asks for: its action and parameters, checked at submission, and the
//! per-SIM [`SimAction`] the worker performs for each item.

use domain::ids::QuotaKind;
use domain::sim::{normalise_label, normalise_tags};
use platform::ApiError;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::actions::SimAction;
use crate::error::domain_error;
use crate::routes::sims::RegisterSim;

/// The actions of `POST /bulk-jobs` (and `register`, the import's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Activate,
    Suspend,
    Terminate,
    TopUp,
    SendSms,
    SetLabel,
    AddTags,
    RemoveTags,
    Sync,
    /// Only through `POST /sims/import`.
    Register,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activate => "activate",
            Self::Suspend => "suspend",
            Self::Terminate => "terminate",
            Self::TopUp => "top_up",
            Self::SendSms => "send_sms",
            Self::SetLabel => "set_label",
            Self::AddTags => "add_tags",
            Self::RemoveTags => "remove_tags",
            Self::Sync => "sync",
            Self::Register => "register",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        serde_json::from_value(Value::String(word.to_owned())).ok()
    }

    /// The parameters each action takes.
    fn allowed_params(self) -> &'static [&'static str] {
        match self {
            Self::TopUp => &["quota", "payment_method"],
            Self::SendSms => &["payload", "source_address"],
            Self::SetLabel => &["label"],
            Self::AddTags | Self::RemoveTags => &["tags"],
            _ => &[],
        }
    }
}

/// `label: null` clears the label; a missing field is not the same.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The parameters of a job, all actions' together (each action takes its own, see
/// [`BulkAction`]); stored with the job as given after checking.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkParams {
    /// `set_label`: the new label; `null` clears it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    /// `add_tags`, `remove_tags`: the tags to add or remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// `top_up`: `data` (default) or `sms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub quota: Option<QuotaKind>,
    /// `top_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// `send_sms`: the text (GSM-7 or UCS-2, at most 6 parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// `send_sms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
}

fn invalid_params(message: impl Into<String>) -> ApiError {
    ApiError::validation("INVALID_PARAMS", message)
}

impl BulkParams {
    /// Checks the parameters against the action (what it needs, what it does not take, and
    /// the domain's rules for labels, tags and SMS texts), so that a job is refused whole
    /// rather than every one of its SIMs for the same reason.
    pub fn check(self, action: BulkAction) -> Result<Self, ApiError> {
        let given = serde_json::to_value(&self).unwrap_or_default();
        let allowed = action.allowed_params();
        if let Some(name) = given
            .as_object()
            .and_then(|fields| fields.keys().find(|k| !allowed.contains(&k.as_str())))
        {
            return Err(invalid_params(format!(
                "{} takes no parameter {name} (it takes: {})",
                action.as_str(),
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ))
            .with_details(json!({ "parameter": name })));
        }
        let mut params = self;
        match action {
            BulkAction::SetLabel => {
                let label = params
                    .label
                    .take()
                    .ok_or_else(|| invalid_params("set_label needs params.label (null clears it)"))?;
                params.label = Some(normalise_label(label).map_err(|e| domain_error(&e))?);
            }
            BulkAction::AddTags | BulkAction::RemoveTags => {
                let tags = params.tags.take().unwrap_or_default();
                if tags.is_empty() {
                    return Err(invalid_params(
                        "add_tags and remove_tags need params.tags, not empty",
                    ));
                }
                params.tags = Some(normalise_tags(tags).map_err(|e| domain_error(&e))?);
            }
            BulkAction::SendSms => {
                let payload = params
                    .payload
                    .as_deref()
                    .ok_or_else(|| invalid_params("send_sms needs params.payload"))?;
                domain::sms_encoding(payload).map_err(|e| domain_error(&e))?;
            }
            _ => {}
        }
        Ok(params)
    }

    /// The command for one SIM of the job; `input` is the item's own (an imported row).
    pub fn action_for(&self, action: BulkAction, input: Option<&Value>) -> Result<SimAction, ApiError> {
        Ok(match action {
            BulkAction::Activate => SimAction::Activate,
            BulkAction::Suspend => SimAction::Suspend,
            BulkAction::Terminate => SimAction::Terminate,
            BulkAction::TopUp => SimAction::TopUp {
                kind: self.quota.unwrap_or(QuotaKind::Data),
                payment_method: self.payment_method.clone(),
            },
            BulkAction::SendSms => SimAction::SendSms {
                payload: self.payload.clone().unwrap_or_default(),
                source_address: self.source_address.clone(),
            },
            BulkAction::SetLabel => SimAction::Update {
                label: Some(self.label.clone().flatten()),
                tags: None,
                imei_lock: None,
            },
            BulkAction::AddTags => SimAction::AddTags(self.tags.clone().unwrap_or_default()),
            BulkAction::RemoveTags => SimAction::RemoveTags(self.tags.clone().unwrap_or_default()),
            BulkAction::Register => {
                let row: RegisterSim = input
                    .cloned()
                    .map(serde_json::from_value)
                    .transpose()
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        ApiError::validation("INVALID_IMPORT_ROW", "the imported row is unreadable")
                    })?;
                row.action()?
            }
            // Not a command on an aggregate: the worker queues a sync job instead.
            BulkAction::Sync => {
                return Err(ApiError::internal("sync is not a SIM command"));
            }
        })
    }
}
