//! The SMS aggregate: one per message (aggregate id = the message id, a UUID).
//!
//! Mobile-terminated messages go Requested → Submitted → Delivered, or → Failed from either of
//! the first two; the sync-connector reports each step. Mobile-originated messages are
//! recorded once, as received. Every event carries the SIM's ICCID because the NATS subject
//! (`sim.v1.<iccid>.<event_type>`) needs it and the aggregate id does not contain it.

mod encoding;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use encoding::{gsm7_septets, sms_encoding, Encoding, GSM7_BASIC, GSM7_EXTENSION, MAX_PARTS};

use crate::ids::Iccid;
use crate::Aggregate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

// Its words (`as_str`, `Display`, `FromStr`) are listed in `crate::spelled`.
/// MT: sent to the device; MO: sent by the device. Spelled as 1NCE's `sms_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Direction {
    #[serde(rename = "MT")]
    MobileTerminated,
    #[serde(rename = "MO")]
    MobileOriginated,
}

/// Where a message stands. Its words (`as_str`, `Display`) are in [`crate::spelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsStatus {
    Requested,
    Submitted,
    Delivered,
    Failed,
    Received,
    /// The provider may or may not have accepted it (the connector lost the answer and could
    /// not find the message at the provider); an operator has to look.
    Unknown,
}

impl SmsStatus {
    /// A final message accepts no further transition.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SmsStatus::Delivered | SmsStatus::Failed | SmsStatus::Received
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sms {
    message_id: Option<Uuid>,
    iccid: Option<Iccid>,
    direction: Option<Direction>,
    /// `None` until the message exists.
    status: Option<SmsStatus>,
    payload: String,
    source_address: Option<String>,
    encoding: Option<Encoding>,
    parts: u8,
    provider_message_id: Option<String>,
    failure_reason: Option<String>,
    requested_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    received_at: Option<DateTime<Utc>>,
}

impl Sms {
    pub fn exists(&self) -> bool {
        self.status.is_some()
    }
    pub fn message_id(&self) -> Option<Uuid> {
        self.message_id
    }
    pub fn iccid(&self) -> Option<&Iccid> {
        self.iccid.as_ref()
    }
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }
    pub fn status(&self) -> Option<SmsStatus> {
        self.status
    }
    pub fn payload(&self) -> &str {
        &self.payload
    }
    pub fn source_address(&self) -> Option<&str> {
        self.source_address.as_deref()
    }
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }
    pub fn parts(&self) -> u8 {
        self.parts
    }
    pub fn provider_message_id(&self) -> Option<&str> {
        self.provider_message_id.as_deref()
    }
    pub fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }
    pub fn requested_at(&self) -> Option<DateTime<Utc>> {
        self.requested_at
    }
    pub fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.submitted_at
    }
    pub fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.delivered_at
    }
    pub fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.failed_at
    }
    pub fn received_at(&self) -> Option<DateTime<Utc>> {
        self.received_at
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
pub enum SmsCommand {
    RequestSend {
        message_id: Uuid,
        iccid: Iccid,
        payload: String,
        source_address: Option<String>,
        at: DateTime<Utc>,
    },
    MarkSubmitted {
        provider_message_id: Option<String>,
        at: DateTime<Utc>,
    },
    MarkDelivered {
        at: DateTime<Utc>,
    },
    MarkFailed {
        reason: String,
        at: DateTime<Utc>,
    },
    /// The send may have reached the provider, but nobody can tell.
    MarkOutcomeUnknown {
        reason: String,
        at: DateTime<Utc>,
    },
    RecordReceived {
        message_id: Uuid,
        iccid: Iccid,
        payload: String,
        source_address: Option<String>,
        provider_message_id: Option<String>,
        received_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum SmsEvent {
    SmsSendRequested {
        message_id: Uuid,
        iccid: Iccid,
        payload: String,
        source_address: Option<String>,
        encoding: Encoding,
        parts: u8,
        requested_at: DateTime<Utc>,
    },
    SmsSubmitted {
        iccid: Iccid,
        provider_message_id: Option<String>,
        submitted_at: DateTime<Utc>,
    },
    SmsDelivered {
        iccid: Iccid,
        delivered_at: DateTime<Utc>,
    },
    SmsFailed {
        iccid: Iccid,
        reason: String,
        failed_at: DateTime<Utc>,
    },
    /// The connector cannot tell whether the provider accepted the message; a later report
    /// (submitted, delivered, failed) may still settle it.
    SmsOutcomeUnknown {
        iccid: Iccid,
        reason: String,
        at: DateTime<Utc>,
    },
    SmsReceived {
        message_id: Uuid,
        iccid: Iccid,
        payload: String,
        source_address: Option<String>,
        provider_message_id: Option<String>,
        received_at: DateTime<Utc>,
    },
}

impl_domain_event!(SmsEvent [
    SmsSendRequested,
    SmsSubmitted,
    SmsDelivered,
    SmsFailed,
    SmsOutcomeUnknown,
    SmsReceived,
]);

impl SmsEvent {
    /// The SIM this message belongs to, for the NATS subject.
    pub fn iccid(&self) -> &Iccid {
        match self {
            SmsEvent::SmsSendRequested { iccid, .. }
            | SmsEvent::SmsSubmitted { iccid, .. }
            | SmsEvent::SmsDelivered { iccid, .. }
            | SmsEvent::SmsFailed { iccid, .. }
            | SmsEvent::SmsOutcomeUnknown { iccid, .. }
            | SmsEvent::SmsReceived { iccid, .. } => iccid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    #[error("SMS payload is empty")]
    PayloadEmpty,
    #[error(
        "SMS payload too long: {length} {} need {parts} parts; at most {limit} fit in {} parts",
        encoding.unit(),
        MAX_PARTS
    )]
    PayloadTooLong {
        encoding: Encoding,
        length: usize,
        limit: usize,
        parts: usize,
    },
    #[error("SMS not found")]
    NotFound,
    #[error("an SMS with this message id already exists")]
    AlreadyExists,
    #[error("SMS cannot go from {from} to {to}")]
    InvalidTransition { from: SmsStatus, to: SmsStatus },
}

impl_domain_error!(SmsError {
    PayloadEmpty => "SMS_PAYLOAD_EMPTY", Validation;
    PayloadTooLong => "SMS_PAYLOAD_TOO_LONG", Validation;
    NotFound => "SMS_NOT_FOUND", NotFound;
    AlreadyExists => "SMS_ALREADY_EXISTS", Conflict;
    InvalidTransition => "INVALID_SMS_TRANSITION", Conflict;
});

impl Sms {
    /// The only transitions an MT message may take; everything else is a late or duplicated
    /// report and must not rewrite a final outcome.
    fn transition(&self, to: SmsStatus) -> Result<Iccid, SmsError> {
        let (Some(from), Some(iccid)) = (self.status, &self.iccid) else {
            return Err(SmsError::NotFound);
        };
        let allowed = matches!(
            (from, to),
            (SmsStatus::Requested, SmsStatus::Submitted)
                | (SmsStatus::Requested, SmsStatus::Failed)
                | (SmsStatus::Submitted, SmsStatus::Delivered)
                | (SmsStatus::Submitted, SmsStatus::Failed)
                | (SmsStatus::Requested, SmsStatus::Unknown)
                | (SmsStatus::Unknown, SmsStatus::Submitted)
                | (SmsStatus::Unknown, SmsStatus::Delivered)
                | (SmsStatus::Unknown, SmsStatus::Failed)
        );
        if allowed {
            Ok(iccid.clone())
        } else {
            Err(SmsError::InvalidTransition { from, to })
        }
    }
}

impl Aggregate for Sms {
    const TYPE: &'static str = "sms";
    type Command = SmsCommand;
    type Event = SmsEvent;
    type Error = SmsError;

    fn handle(&self, command: SmsCommand) -> Result<Vec<SmsEvent>, SmsError> {
        match command {
            SmsCommand::RequestSend {
                message_id,
                iccid,
                payload,
                source_address,
                at,
            } => {
                if self.exists() {
                    return Err(SmsError::AlreadyExists);
                }
                let (encoding, parts) = sms_encoding(&payload)?;
                Ok(vec![SmsEvent::SmsSendRequested {
                    message_id,
                    iccid,
                    payload,
                    source_address,
                    encoding,
                    parts,
                    requested_at: at,
                }])
            }
            SmsCommand::MarkSubmitted {
                provider_message_id,
                at,
            } => Ok(vec![SmsEvent::SmsSubmitted {
                iccid: self.transition(SmsStatus::Submitted)?,
                provider_message_id,
                submitted_at: at,
            }]),
            SmsCommand::MarkDelivered { at } => Ok(vec![SmsEvent::SmsDelivered {
                iccid: self.transition(SmsStatus::Delivered)?,
                delivered_at: at,
            }]),
            SmsCommand::MarkFailed { reason, at } => Ok(vec![SmsEvent::SmsFailed {
                iccid: self.transition(SmsStatus::Failed)?,
                reason,
                failed_at: at,
            }]),
            SmsCommand::MarkOutcomeUnknown { reason, at } => Ok(vec![SmsEvent::SmsOutcomeUnknown {
                iccid: self.transition(SmsStatus::Unknown)?,
                reason,
                at,
            }]),
            SmsCommand::RecordReceived {
                message_id,
                iccid,
                payload,
                source_address,
                provider_message_id,
                received_at,
            } => {
                if self.exists() {
                    return Err(SmsError::AlreadyExists);
                }
                // What a device sent is a fact: no length or emptiness rules apply to it.
                Ok(vec![SmsEvent::SmsReceived {
                    message_id,
                    iccid,
                    payload,
                    source_address,
                    provider_message_id,
                    received_at,
                }])
            }
        }
    }

    fn apply(&mut self, event: &SmsEvent) {
        match event {
            SmsEvent::SmsSendRequested {
                message_id,
                iccid,
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
            } => {
                self.message_id = Some(*message_id);
                self.iccid = Some(iccid.clone());
                self.direction = Some(Direction::MobileTerminated);
                self.status = Some(SmsStatus::Requested);
                self.payload = payload.clone();
                self.source_address = source_address.clone();
                self.encoding = Some(*encoding);
                self.parts = *parts;
                self.requested_at = Some(*requested_at);
            }
            SmsEvent::SmsSubmitted {
                provider_message_id,
                submitted_at,
                ..
            } => {
                self.status = Some(SmsStatus::Submitted);
                self.provider_message_id = provider_message_id.clone();
                self.submitted_at = Some(*submitted_at);
            }
            SmsEvent::SmsDelivered { delivered_at, .. } => {
                self.status = Some(SmsStatus::Delivered);
                self.delivered_at = Some(*delivered_at);
            }
            SmsEvent::SmsFailed {
                reason, failed_at, ..
            } => {
                self.status = Some(SmsStatus::Failed);
                self.failure_reason = Some(reason.clone());
                self.failed_at = Some(*failed_at);
            }
            SmsEvent::SmsOutcomeUnknown { reason, .. } => {
                self.status = Some(SmsStatus::Unknown);
                self.failure_reason = Some(reason.clone());
            }
            SmsEvent::SmsReceived {
                message_id,
                iccid,
                payload,
                source_address,
                provider_message_id,
                received_at,
            } => {
                self.message_id = Some(*message_id);
                self.iccid = Some(iccid.clone());
                self.direction = Some(Direction::MobileOriginated);
                self.status = Some(SmsStatus::Received);
                self.payload = payload.clone();
                self.source_address = source_address.clone();
                self.provider_message_id = provider_message_id.clone();
                self.received_at = Some(*received_at);
            }
        }
    }
}
