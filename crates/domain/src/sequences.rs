//! The harness of the aggregates' property tests: a generated command sequence, run the way the
//! command side runs commands, with each aggregate's properties checked along the way.

use std::fmt::Debug;

use proptest::prelude::*;

use crate::testing::check_envelope;
use crate::{replay, Aggregate};

/// One command of a sequence and what it did.
pub(crate) struct Step<'a, A: Aggregate> {
    /// The state the command was handled in.
    pub before: &'a A,
    pub command: &'a A::Command,
    pub outcome: &'a Result<Vec<A::Event>, A::Error>,
    /// The state after the command's events; `before` again when it was refused.
    pub after: &'a A,
}

/// Runs `commands` from an empty aggregate. A refused command changes nothing; an accepted one's
/// events are each checked with `check_event` (against the state they are applied to), have
/// their envelope checked and are applied in order; then `check_step` sees the whole step. At
/// the end the state must be what replaying the history gives, and survive a JSON snapshot.
/// Returns the final state and the history.
pub(crate) fn run_sequence<A>(
    commands: Vec<A::Command>,
    mut check_event: impl FnMut(&A, &A::Event) -> Result<(), TestCaseError>,
    mut check_step: impl FnMut(Step<'_, A>) -> Result<(), TestCaseError>,
) -> Result<(A, Vec<A::Event>), TestCaseError>
where
    A: Aggregate + PartialEq + Debug,
    A::Command: Clone,
    A::Event: PartialEq,
{
    let mut state = A::default();
    let mut history = Vec::new();
    for command in commands {
        let before = state.clone();
        let outcome = before.handle(command.clone());
        for event in outcome.iter().flatten() {
            check_event(&state, event)?;
            check_envelope(event);
            state.apply(event);
            history.push(event.clone());
        }
        check_step(Step {
            before: &before,
            command: &command,
            outcome: &outcome,
            after: &state,
        })?;
    }
    prop_assert_eq!(&replay::<A>(&history), &state, "the history rebuilds the state");
    let snapshot: A = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
    prop_assert_eq!(&snapshot, &state, "the state survives a JSON snapshot");
    Ok((state, history))
}
