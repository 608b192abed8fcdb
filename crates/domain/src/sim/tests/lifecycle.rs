use super::*;
use crate::testing::{given, iccid, t, uid};
use crate::{DomainError, ErrorKind};

// ---- activation ----

#[test]
fn activation_request_records_a_pending_change() {
    let state = given::<Sim>(&[registered()])
        .when(SimCommand::RequestActivation {
            request_id: uid(1),
            at: t(1),
        })
        .then(&[SimEvent::ActivationRequested {
            request_id: uid(1),
            requested_at: t(1),
        }]);
    assert_eq!(state.status(), SimStatus::Inactive);
    assert_eq!(
        state.pending_change(),
        Some(&PendingChange {
            kind: ChangeKind::Activation,
            request_id: uid(1),
            requested_at: t(1),
        })
    );
}

#[test]
fn activation_is_refused_when_already_active() {
    let e = given::<Sim>(&activated())
        .when(SimCommand::RequestActivation {
            request_id: uid(2),
            at: t(3),
        })
        .then_error("SIM_ALREADY_ACTIVE");
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[test]
fn activation_is_refused_while_a_change_is_pending() {
    let pending = [
        registered(),
        SimEvent::ActivationRequested {
            request_id: uid(1),
            requested_at: t(1),
        },
    ];
    let e = given::<Sim>(&pending)
        .when(SimCommand::RequestActivation {
            request_id: uid(2),
            at: t(2),
        })
        .then_error("CHANGE_PENDING");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    given::<Sim>(&with(
        activated(),
        SimEvent::SuspensionRequested {
            request_id: uid(2),
            requested_at: t(3),
        },
    ))
    .when(SimCommand::RequestActivation {
        request_id: uid(3),
        at: t(4),
    })
    .then_error("CHANGE_PENDING");
}

#[test]
fn confirmed_activation_makes_the_sim_active() {
    let state = given::<Sim>(&activated()[..2])
        .when(SimCommand::ConfirmActivation {
            request_id: uid(1),
            at: t(2),
        })
        .then(&[SimEvent::ActivationCompleted {
            request_id: uid(1),
            completed_at: t(2),
        }]);
    assert_eq!(state.status(), SimStatus::Active);
    assert_eq!(state.pending_change(), None);
    assert_eq!(state.provider_status(), Some(ProviderStatus::Enabled));
}

#[test]
fn failed_activation_clears_the_pending_change_and_keeps_the_status() {
    let state = given::<Sim>(&activated()[..2])
        .when(SimCommand::FailActivation {
            request_id: uid(1),
            reason: "1NCE answered 422".into(),
            at: t(2),
        })
        .then(&[SimEvent::ActivationFailed {
            request_id: uid(1),
            reason: "1NCE answered 422".into(),
            failed_at: t(2),
        }]);
    assert_eq!(state.status(), SimStatus::Inactive);
    assert_eq!(state.pending_change(), None);
}

#[test]
fn confirming_or_failing_needs_the_matching_pending_request() {
    let confirm = |id| SimCommand::ConfirmActivation {
        request_id: id,
        at: t(5),
    };
    // Nothing pending.
    let e = given::<Sim>(&[registered()])
        .when(confirm(uid(1)))
        .then_error("NO_PENDING_REQUEST");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // Another request id.
    given::<Sim>(&activated()[..2])
        .when(confirm(uid(2)))
        .then_error("NO_PENDING_REQUEST");
    given::<Sim>(&activated()[..2])
        .when(SimCommand::FailActivation {
            request_id: uid(2),
            reason: "x".into(),
            at: t(5),
        })
        .then_error("NO_PENDING_REQUEST");
    // The pending change is an activation, not a suspension.
    given::<Sim>(&activated()[..2])
        .when(SimCommand::ConfirmSuspension {
            request_id: uid(1),
            at: t(5),
        })
        .then_error("NO_PENDING_REQUEST");
    // Already completed: a second confirmation is not silently accepted.
    given::<Sim>(&activated())
        .when(confirm(uid(1)))
        .then_error("NO_PENDING_REQUEST");
}

// ---- suspension ----

#[test]
fn suspension_requires_an_active_sim() {
    let e = given::<Sim>(&[registered()])
        .when(SimCommand::RequestSuspension {
            request_id: uid(2),
            at: t(3),
        })
        .then_error("SIM_NOT_ACTIVE");
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[test]
fn suspension_is_requested_then_confirmed() {
    let requested = SimEvent::SuspensionRequested {
        request_id: uid(2),
        requested_at: t(3),
    };
    given::<Sim>(&activated())
        .when(SimCommand::RequestSuspension {
            request_id: uid(2),
            at: t(3),
        })
        .then(std::slice::from_ref(&requested));
    let history = with(activated(), requested);
    given::<Sim>(&history)
        .when(SimCommand::RequestSuspension {
            request_id: uid(3),
            at: t(4),
        })
        .then_error("CHANGE_PENDING");
    let state = given::<Sim>(&history)
        .when(SimCommand::ConfirmSuspension {
            request_id: uid(2),
            at: t(4),
        })
        .then(&[SimEvent::SuspensionCompleted {
            request_id: uid(2),
            completed_at: t(4),
        }]);
    assert_eq!(state.status(), SimStatus::Suspended);
    assert_eq!(state.pending_change(), None);
}

#[test]
fn failed_suspension_leaves_the_sim_active() {
    let history = with(
        activated(),
        SimEvent::SuspensionRequested {
            request_id: uid(2),
            requested_at: t(3),
        },
    );
    let state = given::<Sim>(&history)
        .when(SimCommand::FailSuspension {
            request_id: uid(2),
            reason: "timeout".into(),
            at: t(4),
        })
        .then(&[SimEvent::SuspensionFailed {
            request_id: uid(2),
            reason: "timeout".into(),
            failed_at: t(4),
        }]);
    assert_eq!(state.status(), SimStatus::Active);
    assert_eq!(state.pending_change(), None);
}

#[test]
fn a_suspended_sim_can_be_activated_again() {
    let mut history = activated();
    history.push(SimEvent::SuspensionRequested {
        request_id: uid(2),
        requested_at: t(3),
    });
    history.push(SimEvent::SuspensionCompleted {
        request_id: uid(2),
        completed_at: t(4),
    });
    given::<Sim>(&history)
        .when(SimCommand::RequestActivation {
            request_id: uid(3),
            at: t(5),
        })
        .then(&[SimEvent::ActivationRequested {
            request_id: uid(3),
            requested_at: t(5),
        }]);
}

// ---- termination ----

#[test]
fn terminate_is_a_soft_delete_that_clears_a_pending_change() {
    let state = given::<Sim>(&activated()[..2])
        .when(SimCommand::Terminate {
            reason: Some("device scrapped".into()),
            at: t(9),
        })
        .then(&[SimEvent::SimTerminated {
            reason: Some("device scrapped".into()),
            terminated_at: t(9),
        }]);
    assert_eq!(state.status(), SimStatus::Terminated);
    assert!(state.is_terminated());
    assert_eq!(state.pending_change(), None);
    // History stays readable.
    assert_eq!(state.iccid(), Some(&iccid()));
    assert_eq!(state.termination_reason(), Some("device scrapped"));
}

#[test]
fn a_terminated_sim_refuses_every_command() {
    let history = with(
        activated(),
        SimEvent::SimTerminated {
            reason: None,
            terminated_at: t(9),
        },
    );
    for cmd in every_command() {
        let e = given::<Sim>(&history).when(cmd).then_error("SIM_TERMINATED");
        assert_eq!(e.kind(), ErrorKind::Gone);
    }
}

// ---- provider status ----

fn provider(status: ProviderStatus, at: i64) -> SimCommand {
    SimCommand::RecordProviderStatus { status, at: t(at) }
}

#[test]
fn provider_enabled_makes_the_sim_active() {
    let state = given::<Sim>(&[registered()])
        .when(provider(ProviderStatus::Enabled, 5))
        .then(&[SimEvent::ProviderStatusChanged {
            from: None,
            to: ProviderStatus::Enabled,
            sim_status: SimStatus::Active,
            at: t(5),
        }]);
    assert_eq!(state.status(), SimStatus::Active);
}

#[test]
fn provider_disabled_means_inactive_until_the_sim_was_ever_active() {
    given::<Sim>(&[registered()])
        .when(provider(ProviderStatus::Disabled, 5))
        .then(&[SimEvent::ProviderStatusChanged {
            from: None,
            to: ProviderStatus::Disabled,
            sim_status: SimStatus::Inactive,
            at: t(5),
        }]);
    let enabled = SimEvent::ProviderStatusChanged {
        from: None,
        to: ProviderStatus::Enabled,
        sim_status: SimStatus::Active,
        at: t(5),
    };
    given::<Sim>(&[registered(), enabled])
        .when(provider(ProviderStatus::Disabled, 6))
        .then(&[SimEvent::ProviderStatusChanged {
            from: Some(ProviderStatus::Enabled),
            to: ProviderStatus::Disabled,
            sim_status: SimStatus::Suspended,
            at: t(6),
        }]);
}

#[test]
fn the_same_provider_status_twice_is_not_news() {
    let enabled = SimEvent::ProviderStatusChanged {
        from: None,
        to: ProviderStatus::Enabled,
        sim_status: SimStatus::Active,
        at: t(5),
    };
    given::<Sim>(&[registered(), enabled])
        .when(provider(ProviderStatus::Enabled, 6))
        .then(&[]);
    // A confirmed activation already told us 1NCE has the SIM enabled.
    given::<Sim>(&activated())
        .when(provider(ProviderStatus::Enabled, 6))
        .then(&[]);
}

#[test]
fn provider_status_does_not_clear_a_pending_request() {
    let state = given::<Sim>(&activated()[..2])
        .when(provider(ProviderStatus::Enabled, 3))
        .then(&[SimEvent::ProviderStatusChanged {
            from: None,
            to: ProviderStatus::Enabled,
            sim_status: SimStatus::Active,
            at: t(3),
        }]);
    assert_eq!(state.status(), SimStatus::Active);
    assert_eq!(
        state.pending_change().map(|p| p.request_id),
        Some(uid(1)),
        "the connector still confirms explicitly"
    );
}
