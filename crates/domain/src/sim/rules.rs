//! Why a SIM command is refused, and the input rules shared by registration and updates.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ChangeKind, SimControl, SimStatus, MAX_LABEL_CHARS, MAX_TAGS, MAX_TAG_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("SIM not found")]
    NotFound,
    #[error("SIM is already registered")]
    AlreadyRegistered,
    #[error("SIM is terminated; it accepts no further commands")]
    Terminated,
    #[error("invalid label: {0}")]
    InvalidLabel(String),
    #[error("invalid tags: {0}")]
    InvalidTags(String),
    #[error("SIM is already active")]
    AlreadyActive,
    #[error("SIM is {status}; only an active SIM can be suspended")]
    NotActive { status: SimStatus },
    #[error("a {kind:?} request ({request_id}) is still pending; wait for its outcome")]
    ChangePending { kind: ChangeKind, request_id: Uuid },
    #[error("no pending {kind:?} request with id {request_id}")]
    NoPendingRequest { kind: ChangeKind, request_id: Uuid },
    #[error("no pending provider update with id {request_id}")]
    NoPendingUpdate { request_id: Uuid },
    #[error("a {control:?} request ({request_id}) is still pending; wait for its outcome")]
    ControlPending { control: SimControl, request_id: Uuid },
    #[error("no pending {control:?} request with id {request_id}")]
    NoPendingControl { control: SimControl, request_id: Uuid },
    #[error("usage totals for the period starting {period_start} decreased: {detail}")]
    UsageDecreased {
        period_start: DateTime<Utc>,
        detail: String,
    },
    #[error("invalid usage period: {0}")]
    InvalidUsagePeriod(String),
}

impl_domain_error!(SimError {
    NotFound => "SIM_NOT_FOUND", NotFound;
    AlreadyRegistered => "SIM_ALREADY_REGISTERED", Conflict;
    Terminated => "SIM_TERMINATED", Gone;
    InvalidLabel => "INVALID_LABEL", Validation;
    InvalidTags => "INVALID_TAGS", Validation;
    AlreadyActive => "SIM_ALREADY_ACTIVE", Conflict;
    NotActive => "SIM_NOT_ACTIVE", Conflict;
    ChangePending => "CHANGE_PENDING", Conflict;
    NoPendingRequest => "NO_PENDING_REQUEST", Conflict;
    NoPendingUpdate => "NO_PENDING_REQUEST", Conflict;
    ControlPending => "CHANGE_PENDING", Conflict;
    NoPendingControl => "NO_PENDING_REQUEST", Conflict;
    UsageDecreased => "USAGE_DECREASED", Validation;
    InvalidUsagePeriod => "INVALID_USAGE_PERIOD", Validation;
});

/// Trims the label; a blank label is refused rather than silently cleared, since clearing is
/// explicit (`Some(None)`).
pub fn normalise_label(label: Option<String>) -> Result<Option<String>, SimError> {
    let Some(label) = label else { return Ok(None) };
    let trimmed = label.trim();
    if trimmed.is_empty() {
        return Err(SimError::InvalidLabel(
            "a label must not be blank (send null to clear it)".into(),
        ));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(SimError::InvalidLabel(format!(
            "a label has at most {MAX_LABEL_CHARS} characters, got {chars}"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(SimError::InvalidLabel(
            "a label must not contain control characters".into(),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Sorts and deduplicates tags so that equal sets compare equal and change detection is exact.
pub fn normalise_tags(mut tags: Vec<String>) -> Result<Vec<String>, SimError> {
    for tag in &tags {
        let len = tag.chars().count();
        if !(1..=MAX_TAG_CHARS).contains(&len) {
            return Err(SimError::InvalidTags(format!(
                "each tag has 1 to {MAX_TAG_CHARS} characters, got {len} in {tag:?}"
            )));
        }
        if !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
        {
            return Err(SimError::InvalidTags(format!(
                "tag {tag:?} may contain only letters, digits and _ . : -"
            )));
        }
    }
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(SimError::InvalidTags(format!(
            "at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    Ok(tags)
}

/// Providers send "" for unknown values as often as null; both mean "unknown".
pub(super) fn normalise_observation(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}
