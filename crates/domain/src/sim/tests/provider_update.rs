//! Label and IMEI lock carried out at 1NCE, and the provider's own changes.

use super::*;
use crate::testing::{given, t, uid};

fn labelled(label: &str) -> SimEvent {
    SimEvent::SimLabelChanged {
        label: Some(label.into()),
    }
}

fn requested(id: u128, label: Option<&str>, imei_lock: bool) -> SimEvent {
    SimEvent::ProviderUpdateRequested {
        request_id: uid(id),
        label: label.map(str::to_owned),
        imei_lock,
        requested_at: t(2),
    }
}

#[test]
fn a_provider_update_carries_the_current_label_and_imei_lock() {
    let state = given::<Sim>(&[
        registered(),
        labelled("pump 7"),
        SimEvent::ImeiLockChanged { enabled: true },
    ])
    .when(SimCommand::RequestProviderUpdate {
        request_id: uid(1),
        at: t(2),
    })
    .then(&[requested(1, Some("pump 7"), true)]);
    assert_eq!(state.pending_update().map(|p| p.request_id), Some(uid(1)));
}

#[test]
fn the_same_values_already_pending_are_not_requested_twice_and_other_values_supersede() {
    given::<Sim>(&[registered(), labelled("a"), requested(1, Some("a"), false)])
        .when(SimCommand::RequestProviderUpdate {
            request_id: uid(2),
            at: t(2),
        })
        .then(&[]);
    let state = given::<Sim>(&[
        registered(),
        labelled("a"),
        requested(1, Some("a"), false),
        labelled("b"),
    ])
    .when(SimCommand::RequestProviderUpdate {
        request_id: uid(2),
        at: t(2),
    })
    .then(&[requested(2, Some("b"), false)]);
    assert_eq!(state.pending_update().map(|p| p.request_id), Some(uid(2)));
}

#[test]
fn only_the_pending_update_is_confirmed_failed_or_unknown() {
    let base = vec![registered(), requested(1, None, false)];
    given::<Sim>(&base)
        .when(SimCommand::ConfirmProviderUpdate {
            request_id: uid(9),
            at: t(3),
        })
        .then_error("NO_PENDING_REQUEST");
    let state = given::<Sim>(&base)
        .when(SimCommand::FailProviderUpdate {
            request_id: uid(1),
            reason: "422 expired".into(),
            at: t(3),
        })
        .then(&[SimEvent::ProviderUpdateFailed {
            request_id: uid(1),
            reason: "422 expired".into(),
            failed_at: t(3),
        }]);
    assert!(state.pending_update().is_none());
    let state = given::<Sim>(&base)
        .when(SimCommand::RecordProviderUpdateOutcomeUnknown {
            request_id: uid(1),
            reason: "timeout".into(),
            at: t(3),
        })
        .then(&[SimEvent::ProviderUpdateOutcomeUnknown {
            request_id: uid(1),
            reason: "timeout".into(),
            at: t(3),
        }]);
    assert!(state.pending_update().is_none());
}

#[test]
fn provider_side_changes_are_recorded_when_they_differ() {
    let state = given::<Sim>(&[registered(), labelled("old")])
        .when(SimCommand::RecordProviderDetails {
            label: Some(Some("  new  ".into())),
            imei_lock: Some(true),
            at: t(3),
        })
        .then(&[labelled("new"), SimEvent::ImeiLockChanged { enabled: true }]);
    assert_eq!(state.label(), Some("new"));
    given::<Sim>(&[registered(), labelled("old")])
        .when(SimCommand::RecordProviderDetails {
            label: Some(Some("old".into())),
            imei_lock: Some(false),
            at: t(3),
        })
        .then(&[]);
    // An empty label at the provider clears it; an unacceptable one is left out.
    given::<Sim>(&[registered(), labelled("old")])
        .when(SimCommand::RecordProviderDetails {
            label: Some(Some(String::new())),
            imei_lock: None,
            at: t(3),
        })
        .then(&[SimEvent::SimLabelChanged { label: None }]);
    given::<Sim>(&[registered(), labelled("old")])
        .when(SimCommand::RecordProviderDetails {
            label: Some(Some("x".repeat(MAX_LABEL_CHARS + 1))),
            imei_lock: None,
            at: t(3),
        })
        .then(&[]);
}

#[test]
fn a_pending_platform_update_wins_over_a_provider_side_change() {
    given::<Sim>(&[registered(), labelled("mine"), requested(1, Some("mine"), false)])
        .when(SimCommand::RecordProviderDetails {
            label: Some(Some("portal".into())),
            imei_lock: Some(true),
            at: t(3),
        })
        .then(&[]);
}
