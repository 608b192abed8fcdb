//! The platform's domain: SIM, quota and SMS aggregates, and the operators' rules.
//!
//! Pure by design: no database, no network, no async runtime. Every aggregate turns a command
//! into events (`handle`) and folds events into state (`apply`); the infrastructure decides how
//! events are stored and published.

#[macro_use]
mod macros;

pub mod ids;
pub mod limits;
pub mod quota;
pub mod rule;
pub mod sim;
pub mod sms;
pub mod spelled;

/// Given/when/then for aggregates, for this crate's tests and (with the `testing` feature)
/// other crates' tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The command-sequence harness of the property tests.
#[cfg(test)]
mod sequences;

pub use ids::{
    parse_quota_aggregate_id, quota_aggregate_id, Iccid, IccidProblem, IdError, Imei, Imsi, Msisdn, QuotaKind,
};
pub use limits::{AccountLimits, AccountLimitsCommand, AccountLimitsError, AccountLimitsEvent, LimitIds};
pub use quota::{PendingTopUp, Quota, QuotaCommand, QuotaError, QuotaEvent, QuotaState};
pub use rule::{Rule, RuleAction, RuleCommand, RuleError, RuleEvent, RuleSpec, Trigger};
pub use sim::{
    ChangeKind, Connectivity, ControlOutcome, ControlRecord, ControlState, PendingChange, PendingUpdate,
    ProviderStatus, Sim, SimCommand, SimControl, SimControls, SimError, SimEvent, SimStatus, UsagePeriod,
};
pub use sms::{sms_encoding, Direction, Encoding, Sms, SmsCommand, SmsError, SmsEvent, SmsStatus};
pub use spelled::{Spelled, UnknownWord};

use serde::{de::DeserializeOwned, Serialize};

/// An event-sourced aggregate.
pub trait Aggregate: Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type stored with every event (`"sim"`, `"quota"`, `"sms"`).
    const TYPE: &'static str;
    /// The version of the state's serialised shape. Snapshots (a cache of the state at some
    /// version) written under another one are ignored: change it whenever the state's fields
    /// or their meaning change, so a snapshot of the old shape is never read as the new one.
    const STATE_VERSION: &'static str = "1";
    type Command;
    type Event: DomainEvent;
    type Error: DomainError;

    /// Decides what happens: the events a command produces, or why it is refused.
    /// Never mutates state; `apply` does that.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Must never fail: events are facts.
    fn apply(&mut self, event: &Self::Event);

    /// Whether an event only settles a request and changes nothing a client edits, so that an
    /// `If-Match` of the version before it still holds (a label saved while the connector
    /// confirmed the previous one at the provider is no lost update).
    fn is_settlement(_event: &Self::Event) -> bool {
        false
    }
}

/// An event as stored: its type name and schema version go into the event store's columns.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The event's type name, e.g. `"SimRegistered"`; also the last token of its NATS subject.
    fn event_type(&self) -> &'static str;
    /// The payload's schema version.
    fn event_version(&self) -> &'static str {
        "1.0"
    }
}

/// How an API should answer a refused command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input itself is invalid (HTTP 422).
    Validation,
    /// The aggregate does not exist (HTTP 404).
    NotFound,
    /// The input is valid but the aggregate's state refuses it (HTTP 409).
    Conflict,
    /// The aggregate is terminated: nothing but reads (HTTP 410).
    Gone,
}

/// A domain error with a stable, machine-readable code such as `"SIM_NOT_FOUND"`.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    fn code(&self) -> &'static str;
    fn kind(&self) -> ErrorKind;
}

/// Rebuilds an aggregate from its history, e.g. for an audit "state at time T" read.
///
/// Folding is all it takes because `apply` never fails; keeping it here means every reader of
/// the log rebuilds state exactly as the command side does.
pub fn replay<'a, A: Aggregate>(events: impl IntoIterator<Item = &'a A::Event>) -> A {
    let mut state = A::default();
    for event in events {
        state.apply(event);
    }
    state
}
