//! The NATS wire contract (`docs/events.md`), in one place: the event stream's default name and
//! subjects, its headers and message ids, the check that a message is what the store holds,
//! and the subject that wakes the sync connector for a queued sync job.
//!
//! A message is a wake-up and a cursor, never a fact: the relay checks the stream's tail
//! against the store, and the projectors and the connector act on the stored event a message
//! names, after [`check`] found the two equal.

use async_nats::HeaderMap;
use eventstore::{LogCursor, StoredEvent};
use uuid::Uuid;

/// The JetStream stream of the events (`NATS_STREAM` changes it).
pub const DEFAULT_STREAM: &str = "SIM_EVENTS";
/// The first token of the events' subjects, `<prefix>.v1.<iccid>.<event_type>`
/// (`NATS_SUBJECT_PREFIX` changes it).
pub const DEFAULT_SUBJECT_PREFIX: &str = "sim";
/// The command API publishes a queued sync job's id here; the sync connector listens (a plain
/// NATS subject, not JetStream: the job itself is a row, this only wakes the connector up).
pub const JOBS_SUBJECT: &str = "sync.v1.jobs";

/// The event's global-log position (`StoredEvent::position`).
pub const HEADER_POSITION: &str = "Sim-Position";
/// The event's writing transaction; with the position, the relay's cursor in the global log.
pub const HEADER_TRANSACTION_ID: &str = "Sim-Transaction-Id";
/// The identity of the event store the message comes from (`event_store_identity`).
pub const HEADER_STORE_ID: &str = "Sim-Store-Id";
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
pub const HEADER_EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
pub const HEADER_EXPECTED_STREAM: &str = "Nats-Expected-Stream";
pub const HEADER_EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// `<aggregate_type>:<aggregate_id>:<sequence>`: the same for every republish of one event,
/// so JetStream drops the repeats within its duplicate window.
pub fn message_id(event: &StoredEvent) -> String {
    format!(
        "{}:{}:{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

/// The global-log cursor carried by a relay message's headers; `None` for anything else.
pub fn message_cursor(headers: &HeaderMap) -> Option<LogCursor> {
    let transaction_id = headers.get(HEADER_TRANSACTION_ID)?.as_str().parse().ok()?;
    let position = headers.get(HEADER_POSITION)?.as_str().parse().ok()?;
    Some(LogCursor {
        transaction_id,
        position,
    })
}

/// `<prefix>.v1.<iccid>.<event_type>`, or `None` when the ICCID or the type is not a valid
/// subject token.
pub fn subject(prefix: &str, iccid: &str, event_type: &str) -> Option<String> {
    let valid = |token: &str| {
        !token.is_empty() && !token.contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    };
    (valid(iccid) && valid(event_type)).then(|| format!("{prefix}.v1.{iccid}.{event_type}"))
}

/// A message as it arrived: what it claims to be.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub subject: &'a str,
    pub headers: Option<&'a HeaderMap>,
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// A message as read back from the stream.
    pub fn stored(message: &'a async_nats::jetstream::message::StreamMessage) -> Self {
        Self {
            subject: message.subject.as_str(),
            headers: Some(&message.headers),
            payload: &message.payload,
        }
    }

    /// The position the message names: its `Sim-Position` header, or (from a publisher that
    /// set no headers) its body's `position`. `None`: not a message of the event stream.
    pub fn position(&self) -> Option<i64> {
        if let Some(position) = self
            .headers
            .and_then(|h| h.get(HEADER_POSITION))
            .and_then(|v| v.as_str().parse().ok())
        {
            return Some(position);
        }
        self.body::<BodyPosition>().map(|body| body.position)
    }

    /// The log cursor the message names: its [`Message::position`], and the transaction id of
    /// the relay's headers ([`message_cursor`]) or (from a publisher that set none) of its
    /// body. `None` when either is missing.
    pub fn cursor(&self) -> Option<LogCursor> {
        let position = self.position()?;
        let transaction_id = self
            .headers
            .and_then(message_cursor)
            .map(|cursor| cursor.transaction_id)
            .or_else(|| self.body::<BodyTransaction>().map(|body| body.transaction_id))?;
        Some(LogCursor {
            transaction_id,
            position,
        })
    }

    /// The part of the JSON body that `T` reads; `None` when the body is not such JSON.
    fn body<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.payload).ok()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.and_then(|h| h.get(name)).map(|v| v.as_str())
    }
}

/// The body's `position` (a stored event's envelope).
#[derive(serde::Deserialize)]
struct BodyPosition {
    position: i64,
}

/// The body's `transaction_id` (a stored event's envelope).
#[derive(serde::Deserialize)]
struct BodyTransaction {
    transaction_id: u64,
}

/// How a message differs from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("it is not an event message (no Sim-Position header or position field)")]
    NotAnEvent,
    #[error("it comes from event store {found}, not from this one ({expected})")]
    OtherStore { found: String, expected: Uuid },
    #[error("this store holds no event at position {0}")]
    NotInStore(i64),
    #[error("its {field} differs from the event this store holds at position {position}")]
    Differs { position: i64, field: &'static str },
}

/// Whether `message` is exactly the event `stored` (the store's event at the message's
/// position, `None` when there is none): same store, position, transaction id, message id,
/// subject and envelope (aggregate, sequence, type, metadata, payload, time).
pub fn check(
    message: &Message<'_>,
    stored: Option<&StoredEvent>,
    store_id: Uuid,
    subject_prefix: &str,
) -> Result<(), Mismatch> {
    let position = message.position().ok_or(Mismatch::NotAnEvent)?;
    // Messages published before the store id existed carry none; the rest still has to match.
    if let Some(found) = message.header(HEADER_STORE_ID) {
        if found != store_id.to_string() {
            return Err(Mismatch::OtherStore {
                found: found.chars().take(64).collect(),
                expected: store_id,
            });
        }
    }
    let stored = stored.ok_or(Mismatch::NotInStore(position))?;
    let differs = |field| Mismatch::Differs { position, field };
    if stored.position != position {
        return Err(differs("position"));
    }
    if let Some(transaction_id) = message.header(HEADER_TRANSACTION_ID) {
        if Some(transaction_id) != stored.transaction_id.map(|t| t.to_string()).as_deref() {
            return Err(differs("transaction id"));
        }
    }
    if let Some(msg_id) = message.header(HEADER_MSG_ID) {
        if msg_id != message_id(stored) {
            return Err(differs("message id"));
        }
    }
    if subject(subject_prefix, &stored.iccid, &stored.event_type).as_deref() != Some(message.subject) {
        return Err(differs("subject"));
    }
    let body: StoredEvent = serde_json::from_slice(message.payload).map_err(|_| differs("body"))?;
    let same_record = body.position == stored.position
        && body
            .transaction_id
            .is_none_or(|t| Some(t) == stored.transaction_id)
        && body.aggregate_type == stored.aggregate_type
        && body.aggregate_id == stored.aggregate_id
        && body.sequence == stored.sequence
        && body.event_type == stored.event_type
        && body.event_version == stored.event_version
        && body.iccid == stored.iccid
        && body.recorded_at == stored.recorded_at
        && body.metadata == stored.metadata
        && body.payload == stored.payload;
    if !same_record {
        return Err(differs("body"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredEvent {
        StoredEvent {
            position: 7,
            transaction_id: Some(900),
            aggregate_type: "quota".into(),
            aggregate_id: "8988303000000000001:data".into(),
            sequence: 3,
            event_type: "TopUpRequested".into(),
            event_version: "1".into(),
            iccid: "8988303000000000001".into(),
            recorded_at: "2026-12-01T10:00:00.123456Z".parse().unwrap(),
            metadata: serde_json::json!({"actor": "user:ops"}),
            payload: serde_json::json!({"volume": 1000}),
        }
    }

    fn headers(event: &StoredEvent, store: Uuid) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_POSITION, event.position.to_string().as_str());
        headers.insert(HEADER_TRANSACTION_ID, "900");
        headers.insert(HEADER_MSG_ID, message_id(event).as_str());
        headers.insert(HEADER_STORE_ID, store.to_string().as_str());
        headers
    }

    const SUBJECT: &str = "sim.v1.8988303000000000001.TopUpRequested";

    #[test]
    fn the_relays_own_message_matches() {
        let event = stored();
        let store = Uuid::new_v4();
        let body = serde_json::to_vec(&event).unwrap();
        let headers = headers(&event, store);
        let message = Message {
            subject: SUBJECT,
            headers: Some(&headers),
            payload: &body,
        };
        assert_eq!(message.position(), Some(7));
        assert_eq!(check(&message, Some(&event), store, "sim"), Ok(()));
    }

    #[test]
    fn forged_or_foreign_messages_do_not() {
        let event = stored();
        let store = Uuid::new_v4();
        let headers = headers(&event, store);
        let mut forged = event.clone();
        forged.payload = serde_json::json!({"volume": 999_999});
        let forged_body = serde_json::to_vec(&forged).unwrap();
        let body = serde_json::to_vec(&event).unwrap();
        let at = |subject, payload| Message {
            subject,
            headers: Some(&headers),
            payload,
        };
        assert_eq!(
            check(&at(SUBJECT, &forged_body), Some(&event), store, "sim"),
            Err(Mismatch::Differs {
                position: 7,
                field: "body"
            })
        );
        assert_eq!(
            check(
                &at("sim.v1.8988303000000000002.TopUpRequested", &body),
                Some(&event),
                store,
                "sim"
            ),
            Err(Mismatch::Differs {
                position: 7,
                field: "subject"
            })
        );
        assert_eq!(
            check(&at(SUBJECT, &body), None, store, "sim"),
            Err(Mismatch::NotInStore(7))
        );
        assert!(matches!(
            check(&at(SUBJECT, &body), Some(&event), Uuid::new_v4(), "sim"),
            Err(Mismatch::OtherStore { .. })
        ));
        let plain = Message {
            subject: SUBJECT,
            headers: None,
            payload: b"not an event",
        };
        assert_eq!(
            check(&plain, Some(&event), store, "sim"),
            Err(Mismatch::NotAnEvent)
        );
        let mut huge = headers.clone();
        huge.insert(HEADER_TRANSACTION_ID, "18446744073709551615");
        let message = Message {
            subject: SUBJECT,
            headers: Some(&huge),
            payload: &body,
        };
        assert_eq!(
            check(&message, Some(&event), store, "sim"),
            Err(Mismatch::Differs {
                position: 7,
                field: "transaction id"
            })
        );
    }

    #[test]
    fn subjects_are_single_tokens() {
        assert_eq!(
            subject("sim", "8988303000000000001", "SimActivated").as_deref(),
            Some("sim.v1.8988303000000000001.SimActivated")
        );
        assert_eq!(subject("sim", "", "X"), None);
        assert_eq!(subject("sim", "1", "a.b"), None);
        assert_eq!(subject("sim", "1>", "X"), None);
    }
}
