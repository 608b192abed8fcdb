//! Given/when/then for aggregates: `given::<Sim>(&[events]).when(cmd).then(&[events])`.
//!
//! `then` also checks the serialisation rule the event store relies on, so every test that
//! expects events exercises it too.

use std::fmt::Debug;

use crate::{replay, Aggregate, DomainError, DomainEvent};

pub struct Given<A: Aggregate> {
    state: A,
}

pub fn given<A: Aggregate>(events: &[A::Event]) -> Given<A> {
    Given {
        state: replay::<A>(events),
    }
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> When<A> {
        let result = self.state.handle(command);
        When {
            state: self.state,
            result,
        }
    }

    pub fn state(&self) -> &A {
        &self.state
    }
}

pub struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> When<A>
where
    A::Event: PartialEq,
    A: PartialEq + Debug,
{
    /// Asserts the exact events and returns the state after applying them.
    #[track_caller]
    pub fn then(self, expected: &[A::Event]) -> A {
        let events = match self.result {
            Ok(events) => events,
            Err(e) => panic!("expected events {expected:?}, got error {}: {e}", e.code()),
        };
        assert_eq!(events, expected);
        let mut state = self.state;
        for event in &events {
            check_envelope(event);
            state.apply(event);
        }
        let json = serde_json::to_value(&state).expect("state serialises");
        let back: A = serde_json::from_value(json).expect("state deserialises");
        assert_eq!(back, state, "state survives a JSON round trip");
        state
    }

    /// Asserts a refusal with this code and returns the error for further checks.
    #[track_caller]
    pub fn then_error(self, code: &str) -> A::Error {
        match self.result {
            Ok(events) => panic!("expected error {code}, got events {events:?}"),
            Err(e) => {
                assert_eq!(e.code(), code, "message: {e}");
                assert!(!e.to_string().is_empty());
                e
            }
        }
    }
}

/// The event store writes `event_type` into a column and the payload into another, and the NATS
/// subject ends in the type: all three must agree, and the payload must be a JSON object.
#[track_caller]
pub fn check_envelope<E: DomainEvent + PartialEq>(event: &E) {
    let json = serde_json::to_value(event).expect("event serialises");
    assert_eq!(json["event_type"], event.event_type(), "{json}");
    assert!(json["payload"].is_object(), "payload is an object: {json}");
    assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{json}");
    let back: E = serde_json::from_value(json).expect("event deserialises");
    assert_eq!(&back, event);
}

/// A fixed instant plus `minutes`, so tests read as a timeline.
pub fn t(minutes: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
}

/// A readable, deterministic request or message id.
pub fn uid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

pub fn iccid() -> crate::Iccid {
    crate::Iccid::parse("8988303000123456789").unwrap()
}

pub fn imsi() -> crate::Imsi {
    crate::Imsi::parse("901405100000001").unwrap()
}
