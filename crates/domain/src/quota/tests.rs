use super::*;
use crate::testing::{given, iccid, t, uid};
use crate::{Aggregate, DomainError, ErrorKind};

const MB: u64 = 1_000_000;

fn assign(total: u64, remaining: u64, expiry: Option<i64>) -> QuotaCommand {
    QuotaCommand::Assign {
        iccid: iccid(),
        kind: QuotaKind::Data,
        total,
        remaining,
        expiry_date: expiry.map(t),
        at: t(0),
    }
}

fn assigned(total: u64, remaining: u64, expiry: Option<i64>, period: u32) -> QuotaEvent {
    QuotaEvent::QuotaAssigned {
        iccid: iccid(),
        kind: QuotaKind::Data,
        total,
        remaining,
        expiry_date: expiry.map(t),
        period,
    }
}

fn consume(remaining: u64) -> QuotaCommand {
    QuotaCommand::RecordConsumption { remaining, at: t(5) }
}

fn consumed(used: u64, remaining: u64) -> QuotaEvent {
    QuotaEvent::QuotaConsumptionRecorded {
        used,
        remaining,
        at: t(5),
    }
}

fn crossed(threshold: u8, used_percent: u8, period: u32) -> QuotaEvent {
    QuotaEvent::QuotaThresholdCrossed {
        threshold,
        used_percent,
        period,
    }
}

fn request_top_up(id: u128, volume: i64, sim_status: SimStatus) -> QuotaCommand {
    QuotaCommand::RequestTopUp {
        request_id: uid(id),
        iccid: iccid(),
        kind: QuotaKind::Data,
        volume,
        payment_method: Some("invoice".into()),
        sim_status,
        at: t(10),
    }
}

fn top_up_requested(id: u128, volume: u64) -> QuotaEvent {
    QuotaEvent::TopUpRequested {
        request_id: uid(id),
        iccid: iccid(),
        kind: QuotaKind::Data,
        volume,
        payment_method: Some("invoice".into()),
        requested_at: t(10),
    }
}

/// An assigned quota (100, 10 left) with top-up 1 of 500 pending.
fn top_up_pending() -> Vec<QuotaEvent> {
    vec![assigned(100, 10, None, 1), top_up_requested(1, 500)]
}

// ---- assignment ----

#[test]
fn first_assignment_starts_period_one() {
    let state = given::<Quota>(&[])
        .when(assign(500 * MB, 500 * MB, Some(10_000)))
        .then(&[assigned(500 * MB, 500 * MB, Some(10_000), 1)]);
    assert!(state.is_assigned());
    assert_eq!(state.period(), 1);
    assert_eq!(state.remaining(), 500 * MB);
    assert_eq!(state.kind(), Some(QuotaKind::Data));
}

#[test]
fn the_same_assignment_again_records_nothing() {
    given::<Quota>(&[assigned(100, 100, Some(10_000), 1)])
        .when(assign(100, 100, Some(10_000)))
        .then(&[]);
}

#[test]
fn an_assignment_with_only_remaining_changed_is_consumption() {
    given::<Quota>(&[assigned(100, 100, Some(10_000), 1)])
        .when(assign(100, 50, Some(10_000)))
        .then(&[QuotaEvent::QuotaConsumptionRecorded {
            used: 50,
            remaining: 50,
            at: t(0),
        }]);
}

#[test]
fn a_new_expiry_or_a_larger_total_starts_a_new_period() {
    let history = [
        assigned(100, 100, Some(10_000), 1),
        consumed(85, 15),
        crossed(80, 85, 1),
    ];
    let state = given::<Quota>(&history)
        .when(assign(100, 100, Some(20_000)))
        .then(&[assigned(100, 100, Some(20_000), 2)]);
    assert!(state.thresholds_emitted().is_empty(), "alerts re-armed");
    given::<Quota>(&history)
        .when(assign(200, 115, Some(10_000)))
        .then(&[assigned(200, 115, Some(10_000), 2)]);
}

#[test]
fn a_smaller_total_is_recorded_in_the_same_period() {
    let history = [
        assigned(100, 100, Some(10_000), 1),
        consumed(85, 15),
        crossed(80, 85, 1),
    ];
    // 80 % already fired this period; 100 % fires now.
    given::<Quota>(&history).when(assign(50, 0, Some(10_000))).then(&[
        assigned(50, 0, Some(10_000), 1),
        crossed(100, 100, 1),
        QuotaEvent::QuotaExhausted { period: 1 },
    ]);
}

#[test]
fn an_assignment_evaluates_thresholds_on_remaining() {
    given::<Quota>(&[])
        .when(assign(100, 10, None))
        .then(&[assigned(100, 10, None, 1), crossed(80, 90, 1)]);
}

#[test]
fn remaining_above_total_is_invalid() {
    let e = given::<Quota>(&[])
        .when(assign(100, 101, None))
        .then_error("INVALID_QUOTA");
    assert_eq!(e.kind(), ErrorKind::Validation);
    given::<Quota>(&[assigned(100, 100, None, 1)])
        .when(consume(101))
        .then_error("INVALID_QUOTA");
}

#[test]
fn an_assignment_for_another_sim_or_kind_is_refused() {
    given::<Quota>(&[assigned(100, 100, None, 1)])
        .when(QuotaCommand::Assign {
            iccid: iccid(),
            kind: QuotaKind::Sms,
            total: 100,
            remaining: 100,
            expiry_date: None,
            at: t(0),
        })
        .then_error("INVALID_QUOTA");
}

// ---- consumption and alerts ----

#[test]
fn consumption_is_recorded_when_remaining_changes() {
    let state = given::<Quota>(&[assigned(100 * MB, 100 * MB, None, 1)])
        .when(consume(70 * MB))
        .then(&[consumed(30 * MB, 70 * MB)]);
    assert_eq!(state.used(), 30 * MB);
    given::<Quota>(&[assigned(100, 100, None, 1), consumed(30, 70)])
        .when(consume(70))
        .then(&[]);
}

#[test]
fn crossing_80_percent_alerts_once_per_period() {
    let history = [assigned(100, 100, None, 1)];
    given::<Quota>(&history)
        .when(consume(20))
        .then(&[consumed(80, 20), crossed(80, 80, 1)]);
    let after = [assigned(100, 100, None, 1), consumed(80, 20), crossed(80, 80, 1)];
    given::<Quota>(&after).when(consume(10)).then(&[consumed(90, 10)]);
}

#[test]
fn just_below_80_percent_does_not_alert() {
    // 79.999 % used: the comparison is exact, not rounded.
    given::<Quota>(&[assigned(100_000, 100_000, None, 1)])
        .when(consume(20_001))
        .then(&[consumed(79_999, 20_001)]);
}

#[test]
fn jumping_from_70_to_100_percent_raises_both_alerts_in_order_and_exhausts() {
    let state = given::<Quota>(&[assigned(100, 100, None, 1), consumed(70, 30)])
        .when(consume(0))
        .then(&[
            consumed(100, 0),
            crossed(80, 100, 1),
            crossed(100, 100, 1),
            QuotaEvent::QuotaExhausted { period: 1 },
        ]);
    assert!(state.is_exhausted());
    assert_eq!(state.thresholds_emitted(), [80, 100]);
}

#[test]
fn exhaustion_is_reported_once_per_period() {
    let history = [
        assigned(100, 100, None, 1),
        consumed(100, 0),
        crossed(80, 100, 1),
        crossed(100, 100, 1),
        QuotaEvent::QuotaExhausted { period: 1 },
    ];
    // A provider correction back up and down again does not re-alert.
    let mut more = history.to_vec();
    more.push(consumed(95, 5));
    let state = given::<Quota>(&more).when(consume(0)).then(&[consumed(100, 0)]);
    assert!(state.is_exhausted());
    let state = given::<Quota>(&more).state().clone();
    assert!(!state.is_exhausted(), "cleared by the correction");
}

#[test]
fn a_zero_quota_raises_no_alerts() {
    given::<Quota>(&[])
        .when(assign(0, 0, None))
        .then(&[assigned(0, 0, None, 1)]);
}

#[test]
fn consumption_before_assignment_is_not_found() {
    let e = given::<Quota>(&[]).when(consume(1)).then_error("QUOTA_NOT_FOUND");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    given::<Quota>(&[])
        .when(QuotaCommand::Expire { at: t(0) })
        .then_error("QUOTA_NOT_FOUND");
}

// ---- expiry ----

#[test]
fn expire_records_once_when_due() {
    let history = [assigned(100, 40, Some(1_000), 1)];
    let state = given::<Quota>(&history)
        .when(QuotaCommand::Expire { at: t(1_000) })
        .then(&[QuotaEvent::QuotaExpired {
            expired_at: t(1_000),
            period: 1,
        }]);
    assert!(state.is_expired());
    let mut after = history.to_vec();
    after.push(QuotaEvent::QuotaExpired {
        expired_at: t(1_000),
        period: 1,
    });
    given::<Quota>(&after)
        .when(QuotaCommand::Expire { at: t(2_000) })
        .then(&[]);
}

#[test]
fn expire_before_the_expiry_date_or_without_one_records_nothing() {
    given::<Quota>(&[assigned(100, 40, Some(1_000), 1)])
        .when(QuotaCommand::Expire { at: t(999) })
        .then(&[]);
    given::<Quota>(&[assigned(100, 40, None, 1)])
        .when(QuotaCommand::Expire { at: t(99_999) })
        .then(&[]);
}

#[test]
fn a_new_expiry_clears_expired() {
    let state = given::<Quota>(&[
        assigned(100, 40, Some(1_000), 1),
        QuotaEvent::QuotaExpired {
            expired_at: t(1_000),
            period: 1,
        },
    ])
    .when(assign(100, 100, Some(5_000)))
    .then(&[assigned(100, 100, Some(5_000), 2)]);
    assert!(!state.is_expired());
}

// ---- top-ups ----

#[test]
fn a_top_up_is_requested_with_a_positive_volume() {
    let state = given::<Quota>(&[assigned(100, 10, None, 1)])
        .when(request_top_up(1, 500, SimStatus::Active))
        .then(&[top_up_requested(1, 500)]);
    assert_eq!(state.pending_top_up().map(|p| p.request_id), Some(uid(1)));
}

#[test]
fn a_top_up_may_precede_the_assignment() {
    let state = given::<Quota>(&[])
        .when(request_top_up(1, 500, SimStatus::Inactive))
        .then(&[top_up_requested(1, 500)]);
    assert!(!state.is_assigned());
    assert_eq!(state.iccid(), Some(&iccid()));
    assert_eq!(state.kind(), Some(QuotaKind::Data));
}

#[test]
fn a_top_up_for_a_terminated_sim_is_gone() {
    let e = given::<Quota>(&[assigned(100, 10, None, 1)])
        .when(request_top_up(1, 500, SimStatus::Terminated))
        .then_error("SIM_TERMINATED");
    assert_eq!(e.kind(), ErrorKind::Gone);
}

#[test]
fn a_top_up_volume_must_be_positive() {
    for volume in [0, -1, i64::MIN] {
        let e = given::<Quota>(&[assigned(100, 10, None, 1)])
            .when(request_top_up(1, volume, SimStatus::Active))
            .then_error("INVALID_TOPUP_VOLUME");
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
}

#[test]
fn only_one_top_up_may_be_pending() {
    let e = given::<Quota>(&top_up_pending())
        .when(request_top_up(2, 500, SimStatus::Active))
        .then_error("TOPUP_PENDING");
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[test]
fn a_completed_top_up_grows_the_quota_and_starts_a_new_period() {
    let history = [
        assigned(100, 100, Some(1_000), 1),
        consumed(100, 0),
        crossed(80, 100, 1),
        crossed(100, 100, 1),
        QuotaEvent::QuotaExhausted { period: 1 },
        QuotaEvent::QuotaExpired {
            expired_at: t(1_000),
            period: 1,
        },
        top_up_requested(1, 500),
    ];
    let state = given::<Quota>(&history)
        .when(QuotaCommand::CompleteTopUp {
            request_id: uid(1),
            volume_added: 500,
            at: t(11),
        })
        .then(&[QuotaEvent::TopUpCompleted {
            request_id: uid(1),
            volume_added: 500,
            total: 600,
            remaining: 500,
            period: 2,
        }]);
    assert_eq!(state.pending_top_up(), None);
    assert!(!state.is_exhausted());
    assert!(!state.is_expired());
    assert!(state.thresholds_emitted().is_empty());
    // The alerts are armed again in the new period.
    given::<Quota>(
        &[
            history.to_vec(),
            vec![QuotaEvent::TopUpCompleted {
                request_id: uid(1),
                volume_added: 500,
                total: 600,
                remaining: 500,
                period: 2,
            }],
        ]
        .concat(),
    )
    .when(consume(60))
    .then(&[consumed(540, 60), crossed(80, 90, 2)]);
}

#[test]
fn a_small_top_up_may_still_leave_the_quota_above_80_percent_used() {
    given::<Quota>(&[
        assigned(100, 100, None, 1),
        consumed(100, 0),
        top_up_requested(1, 10),
    ])
    .when(QuotaCommand::CompleteTopUp {
        request_id: uid(1),
        volume_added: 10,
        at: t(11),
    })
    .then(&[
        QuotaEvent::TopUpCompleted {
            request_id: uid(1),
            volume_added: 10,
            total: 110,
            remaining: 10,
            period: 2,
        },
        crossed(80, 90, 2),
    ]);
}

#[test]
fn a_failed_or_unknown_top_up_clears_the_pending_request_without_adding_volume() {
    let unknown = |id| QuotaCommand::RecordTopUpOutcomeUnknown {
        request_id: uid(id),
        reason: "provider answer lost".into(),
        at: t(12),
    };
    let fail = QuotaCommand::FailTopUp {
        request_id: uid(1),
        reason: "bad payment method".into(),
        at: t(11),
    };
    let failed = QuotaEvent::TopUpFailed {
        request_id: uid(1),
        reason: "bad payment method".into(),
        failed_at: t(11),
    };
    let outcome_unknown = QuotaEvent::TopUpOutcomeUnknown {
        request_id: uid(1),
        reason: "provider answer lost".into(),
        at: t(12),
    };
    for (settle, settled) in [(fail, failed), (unknown(1), outcome_unknown)] {
        let state = given::<Quota>(&top_up_pending()).when(settle).then(&[settled]);
        assert_eq!(state.pending_top_up(), None);
        assert_eq!(state.total(), 100);
        assert_eq!(state.remaining(), 10);
    }
    // Only the pending request can end unknown, and only once.
    given::<Quota>(&top_up_pending())
        .when(unknown(2))
        .then_error("NO_PENDING_TOPUP");
    let mut settled = top_up_pending();
    settled.push(QuotaEvent::TopUpOutcomeUnknown {
        request_id: uid(1),
        reason: "x".into(),
        at: t(12),
    });
    given::<Quota>(&settled)
        .when(unknown(1))
        .then_error("NO_PENDING_TOPUP");
}

#[test]
fn completing_or_failing_needs_the_matching_pending_top_up() {
    let complete = |id| QuotaCommand::CompleteTopUp {
        request_id: uid(id),
        volume_added: 1,
        at: t(11),
    };
    let e = given::<Quota>(&[assigned(100, 10, None, 1)])
        .when(complete(1))
        .then_error("NO_PENDING_TOPUP");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    given::<Quota>(&top_up_pending())
        .when(complete(2))
        .then_error("NO_PENDING_TOPUP");
    given::<Quota>(&top_up_pending())
        .when(QuotaCommand::FailTopUp {
            request_id: uid(2),
            reason: "x".into(),
            at: t(11),
        })
        .then_error("NO_PENDING_TOPUP");
}

#[test]
fn quota_events_serialise_adjacently_tagged() {
    let json = serde_json::to_value(crossed(80, 85, 3)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "event_type": "QuotaThresholdCrossed",
            "payload": {"threshold": 80, "used_percent": 85, "period": 3}
        })
    );
    let json = serde_json::to_value(assigned(1, 1, None, 1)).unwrap();
    assert_eq!(json["payload"]["kind"], "data");
    assert_eq!(QuotaEvent::EVENT_TYPES.len(), 9);
    assert_eq!(Quota::TYPE, "quota");
}
