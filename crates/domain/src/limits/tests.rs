//! Given/when/then tests of the account's limits.

use super::*;
use crate::testing::{given, t, uid};
use crate::DomainError;

fn ids(data: Option<u64>, mt: Option<u64>, mo: Option<u64>) -> LimitIds {
    LimitIds {
        data_limit_id: data,
        sms_mt_limit_id: mt,
        sms_mo_limit_id: mo,
    }
}

fn requested(id: u128, limits: LimitIds) -> AccountLimitsEvent {
    AccountLimitsEvent::AccountLimitsChangeRequested {
        request_id: uid(id),
        limits,
        requested_at: t(1),
    }
}

fn request(id: u128, limits: LimitIds) -> AccountLimitsCommand {
    AccountLimitsCommand::RequestChange {
        request_id: uid(id),
        limits,
        at: t(1),
    }
}

fn settle(id: u128, outcome: ControlOutcome) -> AccountLimitsCommand {
    AccountLimitsCommand::Settle {
        request_id: uid(id),
        outcome,
        at: t(2),
    }
}

#[test]
fn a_change_is_requested_and_becomes_current_once_completed() {
    let state = given::<AccountLimits>(&[])
        .when(request(1, ids(Some(2), None, Some(3))))
        .then(&[requested(1, ids(Some(2), None, Some(3)))]);
    assert_eq!(state.pending().map(|p| p.request_id), Some(uid(1)));
    assert_eq!(state.current(), &LimitIds::default());
    let state = given::<AccountLimits>(&[requested(1, ids(Some(2), None, Some(3)))])
        .when(settle(1, ControlOutcome::Completed))
        .then(&[AccountLimitsEvent::AccountLimitsChangeCompleted {
            request_id: uid(1),
            completed_at: t(2),
        }]);
    assert_eq!(state.current(), &ids(Some(2), None, Some(3)));
    assert!(state.pending().is_none());
    // A later change keeps what it does not name; the same ids again record nothing.
    let done = [
        requested(1, ids(Some(2), None, Some(3))),
        AccountLimitsEvent::AccountLimitsChangeCompleted {
            request_id: uid(1),
            completed_at: t(2),
        },
    ];
    given::<AccountLimits>(&done)
        .when(request(2, ids(Some(2), None, None)))
        .then(&[]);
    given::<AccountLimits>(&done)
        .when(request(2, ids(None, Some(1), None)))
        .then(&[requested(2, ids(None, Some(1), None))]);
}

#[test]
fn a_failed_or_unknown_change_leaves_the_current_limits() {
    let base = [requested(1, ids(Some(9), None, None))];
    let state = given::<AccountLimits>(&base)
        .when(settle(
            1,
            ControlOutcome::Failed {
                reason: "400 not selectable".into(),
            },
        ))
        .then(&[AccountLimitsEvent::AccountLimitsChangeFailed {
            request_id: uid(1),
            reason: "400 not selectable".into(),
            failed_at: t(2),
        }]);
    assert_eq!(state.current(), &LimitIds::default());
    let last = state.last().unwrap();
    assert_eq!(
        (last.state, last.reason.as_deref()),
        (ControlState::Failed, Some("400 not selectable"))
    );
    given::<AccountLimits>(&base)
        .when(settle(
            1,
            ControlOutcome::Unknown {
                reason: "timeout".into(),
            },
        ))
        .then(&[AccountLimitsEvent::AccountLimitsChangeOutcomeUnknown {
            request_id: uid(1),
            reason: "timeout".into(),
            at: t(2),
        }]);
}

#[test]
fn refusals_empty_change_pending_change_and_unknown_settlement() {
    let err = given::<AccountLimits>(&[])
        .when(request(1, LimitIds::default()))
        .then_error("INVALID_LIMITS");
    assert_eq!(err.kind(), crate::ErrorKind::Validation);
    let base = [requested(1, ids(Some(2), None, None))];
    let err = given::<AccountLimits>(&base)
        .when(request(2, ids(Some(3), None, None)))
        .then_error("CHANGE_PENDING");
    assert_eq!(err, AccountLimitsError::ChangePending { request_id: uid(1) });
    given::<AccountLimits>(&base)
        .when(settle(2, ControlOutcome::Completed))
        .then_error("NO_PENDING_REQUEST");
    given::<AccountLimits>(&[])
        .when(settle(1, ControlOutcome::Completed))
        .then_error("NO_PENDING_REQUEST");
}

#[test]
fn event_types_and_settlements() {
    assert_eq!(AccountLimitsEvent::EVENT_TYPES.len(), 4);
    assert_eq!(AccountLimits::TYPE, "account_limits");
    assert!(!AccountLimits::is_settlement(&requested(
        1,
        ids(Some(1), None, None)
    )));
    assert!(AccountLimits::is_settlement(
        &AccountLimitsEvent::AccountLimitsChangeCompleted {
            request_id: uid(1),
            completed_at: t(2),
        }
    ));
}
