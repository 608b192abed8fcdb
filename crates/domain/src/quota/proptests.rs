//! Any sequence of commands keeps the quota's invariants.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::sequences::{run_sequence, Step};
use crate::testing::{iccid, t, uid};
use crate::DomainError;

fn arb_command() -> impl Strategy<Value = QuotaCommand> {
    let id = (0u128..3).prop_map(uid);
    let at = (0i64..3_000).prop_map(t);
    let status = prop_oneof![
        4 => Just(SimStatus::Active),
        1 => Just(SimStatus::Inactive),
        1 => Just(SimStatus::Terminated),
    ];
    prop_oneof![
        2 => (0u64..120, 0u64..120, prop::option::of(0i64..3).prop_map(|e| e.map(|d| t(d * 1_000))), at.clone())
            .prop_map(|(total, remaining, expiry_date, at)| QuotaCommand::Assign {
                iccid: iccid(),
                kind: QuotaKind::Data,
                total,
                remaining,
                expiry_date,
                at,
            }),
        3 => (0u64..120, at.clone()).prop_map(|(remaining, at)| QuotaCommand::RecordConsumption { remaining, at }),
        1 => at.clone().prop_map(|at| QuotaCommand::Expire { at }),
        2 => (id.clone(), -2i64..50, status, at.clone()).prop_map(|(request_id, volume, sim_status, at)| {
            QuotaCommand::RequestTopUp {
                request_id,
                iccid: iccid(),
                kind: QuotaKind::Data,
                volume,
                payment_method: None,
                sim_status,
                at,
            }
        }),
        2 => (id.clone(), 0u64..50, at.clone()).prop_map(|(request_id, volume_added, at)| {
            QuotaCommand::CompleteTopUp { request_id, volume_added, at }
        }),
        1 => (id, at).prop_map(|(request_id, at)| QuotaCommand::FailTopUp {
            request_id,
            reason: "x".into(),
            at
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_sequence_keeps_the_invariants(
        commands in prop::collection::vec(arb_command(), 1..50)
    ) {
        let mut alerts: HashSet<(u32, u8)> = HashSet::new();
        let mut exhaustions: HashSet<u32> = HashSet::new();
        let check_event = |quota: &Quota, event: &QuotaEvent| {
            prop_assert!(quota.remaining() <= quota.total(), "remaining <= total");
            match event {
                QuotaEvent::QuotaThresholdCrossed { threshold, period, .. } => {
                    prop_assert!(alerts.insert((*period, *threshold)), "each threshold once per period");
                    prop_assert_eq!(*period, quota.period());
                    let used = u128::from(quota.used());
                    prop_assert!(used * 100 >= u128::from(*threshold) * u128::from(quota.total()));
                }
                QuotaEvent::QuotaExhausted { period } => {
                    prop_assert!(exhaustions.insert(*period), "exhausted once per period");
                    prop_assert_eq!(quota.remaining(), 0);
                }
                QuotaEvent::TopUpRequested { .. } => {
                    prop_assert!(quota.pending_top_up().is_none(), "one pending top-up at most");
                }
                QuotaEvent::TopUpCompleted { request_id, .. } | QuotaEvent::TopUpFailed { request_id, .. } => {
                    prop_assert_eq!(quota.pending_top_up().map(|p| p.request_id), Some(*request_id));
                }
                _ => {}
            }
            Ok(())
        };
        run_sequence(commands, check_event, |step: Step<'_, Quota>| {
            let Ok(events) = step.outcome else { return Ok(()) };
            let (quota, cmd) = (step.after, step.command);
            prop_assert!(quota.remaining() <= quota.total(), "remaining <= total");
            prop_assert!(quota.period() >= step.before.period(), "periods only move forward");
            // Alerts are never left owed: after any command, a crossed threshold has fired.
            if quota.total() > 0 {
                for th in THRESHOLDS {
                    let due = u128::from(quota.used()) * 100 >= u128::from(th) * u128::from(quota.total());
                    if due && events.iter().any(|e| !matches!(e, QuotaEvent::TopUpRequested { .. } | QuotaEvent::TopUpFailed { .. } | QuotaEvent::QuotaExpired { .. })) {
                        prop_assert!(quota.thresholds_emitted().contains(&th));
                    }
                }
            }
            // Provider reports are idempotent.
            if matches!(cmd, QuotaCommand::Assign { .. } | QuotaCommand::RecordConsumption { .. } | QuotaCommand::Expire { .. }) {
                prop_assert_eq!(quota.handle(cmd.clone()).map_err(|e| e.code()), Ok(vec![]));
            }
            Ok(())
        })?;
    }
}
