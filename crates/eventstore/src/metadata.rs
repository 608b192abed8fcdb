use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Stored with every event: who caused it, through which command, in which conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The command that produced the event (one command may produce several events).
    pub command_id: Uuid,
    /// Shared by every command of one conversation (an operator request and the connector's
    /// confirmation of it, for example).
    pub correlation_id: Uuid,
    /// The message that caused this command: an event's or request's id; the command's own id
    /// when an operator issued it directly.
    pub causation_id: Uuid,
    /// `user:<name>`, `api_key:<name>` or `connector:<name>`.
    pub actor: String,
    /// When the command was accepted.
    pub occurred_at: DateTime<Utc>,
    /// The HTTP request that carried the command, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl EventMetadata {
    /// Metadata of a command issued directly by `actor`, starting a new correlation.
    pub fn new(actor: impl Into<String>) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            command_id,
            correlation_id: command_id,
            causation_id: command_id,
            actor: actor.into(),
            occurred_at: Utc::now(),
            request_id: None,
        }
    }
}

/// An idempotency key, scoped to whoever sent it, with a fingerprint of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// Keys of different principals never collide.
    pub scope: String,
    pub key: String,
    /// A hash of what the request asked for; the same key with another request is refused.
    pub request_hash: String,
    /// The status to store and answer again on a replay (201, 202, …).
    pub response_status: u16,
}

/// Everything about a command except the command itself.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub metadata: EventMetadata,
    /// The aggregate's version the caller saw (`If-Match`); a different version refuses.
    pub expected_version: Option<u64>,
    pub idempotency: Option<Idempotency>,
}

impl CommandContext {
    pub fn new(metadata: EventMetadata) -> Self {
        Self {
            metadata,
            expected_version: None,
            idempotency: None,
        }
    }
}
