//! Connectivity reset and auto top-up carried out at 1NCE.

use super::*;
use crate::testing::{given, t, uid, When};
use crate::DomainError;

#[track_caller]
fn refused(when: When<Sim>, expected: SimError) {
    assert_eq!(when.then_error(expected.code()), expected);
}

fn reset_requested(id: u128) -> SimEvent {
    SimEvent::ConnectivityResetRequested {
        request_id: uid(id),
        requested_at: t(3),
    }
}

fn auto_requested(id: u128, enabled: bool) -> SimEvent {
    SimEvent::AutoTopUpChangeRequested {
        request_id: uid(id),
        enabled,
        requested_at: t(3),
    }
}

fn settle(control: SimControl, id: u128, outcome: ControlOutcome) -> SimCommand {
    SimCommand::SettleControl {
        control,
        request_id: uid(id),
        outcome,
        at: t(4),
    }
}

#[test]
fn a_reset_is_requested_for_an_active_sim_and_one_at_a_time() {
    let state = given::<Sim>(&activated())
        .when(SimCommand::RequestConnectivityReset {
            request_id: uid(7),
            at: t(3),
        })
        .then(&[reset_requested(7)]);
    let record = state.controls().last_reset.clone().unwrap();
    assert_eq!((record.request_id, record.state), (uid(7), ControlState::Pending));
    refused(
        given::<Sim>(&with(activated(), reset_requested(7))).when(SimCommand::RequestConnectivityReset {
            request_id: uid(8),
            at: t(3),
        }),
        SimError::ControlPending {
            control: SimControl::ConnectivityReset,
            request_id: uid(7),
        },
    );
    refused(
        given::<Sim>(&[registered()]).when(SimCommand::RequestConnectivityReset {
            request_id: uid(8),
            at: t(3),
        }),
        SimError::NotActive {
            status: SimStatus::Inactive,
        },
    );
}

#[test]
fn a_reset_ends_completed_failed_or_unknown_and_then_another_may_follow() {
    let base = with(activated(), reset_requested(7));
    let state = given::<Sim>(&base)
        .when(settle(
            SimControl::ConnectivityReset,
            7,
            ControlOutcome::Completed,
        ))
        .then(&[SimEvent::ConnectivityResetCompleted {
            request_id: uid(7),
            completed_at: t(4),
        }]);
    let record = state.controls().last_reset.clone().unwrap();
    assert_eq!(
        (record.state, record.settled_at),
        (ControlState::Completed, Some(t(4)))
    );
    let failed = ControlOutcome::Failed {
        reason: "422 expired".into(),
    };
    let state = given::<Sim>(&base)
        .when(settle(SimControl::ConnectivityReset, 7, failed))
        .then(&[SimEvent::ConnectivityResetFailed {
            request_id: uid(7),
            reason: "422 expired".into(),
            failed_at: t(4),
        }]);
    let record = state.controls().last_reset.clone().unwrap();
    assert_eq!(record.reason.as_deref(), Some("422 expired"));
    let unknown = ControlOutcome::Unknown {
        reason: "timeout".into(),
    };
    given::<Sim>(&base)
        .when(settle(SimControl::ConnectivityReset, 7, unknown))
        .then(&[SimEvent::ConnectivityResetOutcomeUnknown {
            request_id: uid(7),
            reason: "timeout".into(),
            at: t(4),
        }]);
    let mut settled = base.clone();
    settled.push(SimEvent::ConnectivityResetCompleted {
        request_id: uid(7),
        completed_at: t(4),
    });
    given::<Sim>(&settled)
        .when(SimCommand::RequestConnectivityReset {
            request_id: uid(9),
            at: t(3),
        })
        .then(&[reset_requested(9)]);
}

#[test]
fn only_the_pending_control_request_is_settled() {
    let base = with(activated(), reset_requested(7));
    refused(
        given::<Sim>(&base).when(settle(
            SimControl::ConnectivityReset,
            8,
            ControlOutcome::Completed,
        )),
        SimError::NoPendingControl {
            control: SimControl::ConnectivityReset,
            request_id: uid(8),
        },
    );
    refused(
        given::<Sim>(&base).when(settle(SimControl::AutoTopUp, 7, ControlOutcome::Completed)),
        SimError::NoPendingControl {
            control: SimControl::AutoTopUp,
            request_id: uid(7),
        },
    );
}

#[test]
fn auto_top_up_is_requested_once_superseded_by_the_other_value_and_confirmed() {
    let state = given::<Sim>(&[registered()])
        .when(SimCommand::RequestAutoTopUp {
            request_id: uid(1),
            enabled: true,
            at: t(3),
        })
        .then(&[auto_requested(1, true)]);
    assert_eq!(state.controls().auto_topup, None);
    let pending = with(vec![registered()], auto_requested(1, true));
    given::<Sim>(&pending)
        .when(SimCommand::RequestAutoTopUp {
            request_id: uid(2),
            enabled: true,
            at: t(3),
        })
        .then(&[]);
    given::<Sim>(&pending)
        .when(SimCommand::RequestAutoTopUp {
            request_id: uid(2),
            enabled: false,
            at: t(3),
        })
        .then(&[auto_requested(2, false)]);
    let state = given::<Sim>(&pending)
        .when(settle(SimControl::AutoTopUp, 1, ControlOutcome::Completed))
        .then(&[SimEvent::AutoTopUpChangeCompleted {
            request_id: uid(1),
            enabled: true,
            completed_at: t(4),
        }]);
    assert_eq!(state.controls().auto_topup, Some(true));
    assert!(state.controls().pending(SimControl::AutoTopUp).is_none());
    // Already on at 1NCE: nothing to do.
    let on = with(
        pending,
        SimEvent::AutoTopUpChangeCompleted {
            request_id: uid(1),
            enabled: true,
            completed_at: t(4),
        },
    );
    given::<Sim>(&on)
        .when(SimCommand::RequestAutoTopUp {
            request_id: uid(3),
            enabled: true,
            at: t(5),
        })
        .then(&[]);
}

#[test]
fn a_failed_auto_top_up_keeps_the_setting_1nce_has() {
    let base = vec![
        registered(),
        auto_requested(1, true),
        SimEvent::AutoTopUpChangeCompleted {
            request_id: uid(1),
            enabled: true,
            completed_at: t(4),
        },
        auto_requested(2, false),
    ];
    let state = given::<Sim>(&base)
        .when(settle(
            SimControl::AutoTopUp,
            2,
            ControlOutcome::Failed {
                reason: "refused".into(),
            },
        ))
        .then(&[SimEvent::AutoTopUpChangeFailed {
            request_id: uid(2),
            reason: "refused".into(),
            failed_at: t(4),
        }]);
    assert_eq!(state.controls().auto_topup, Some(true));
    let record = state.controls().last_auto_topup.clone().unwrap();
    assert_eq!(
        (record.enabled, record.state),
        (Some(false), ControlState::Failed)
    );
}

#[test]
fn control_settlements_keep_an_if_match() {
    assert!(Sim::is_settlement(&SimEvent::ConnectivityResetCompleted {
        request_id: uid(1),
        completed_at: t(1),
    }));
    assert!(Sim::is_settlement(&SimEvent::AutoTopUpChangeFailed {
        request_id: uid(1),
        reason: "x".into(),
        failed_at: t(1),
    }));
    assert!(!Sim::is_settlement(&reset_requested(1)));
}
