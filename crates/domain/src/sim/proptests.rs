//! Any sequence of commands keeps the SIM's invariants.

use proptest::prelude::*;

use super::*;
use crate::sequences::{run_sequence, Step};
use crate::testing::{iccid, imsi, t, uid};
use crate::{Aggregate, DomainError};

fn arb_command() -> impl Strategy<Value = SimCommand> {
    // Small pools make collisions (matching request ids, repeated reports) likely.
    let id = (0u128..3).prop_map(uid);
    let at = (0i64..10_000).prop_map(t);
    let tag = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("bad tag".to_owned())
    ];
    let label = prop_oneof![
        Just(None),
        Just(Some(None)),
        Just(Some(Some("Pump".to_owned()))),
        Just(Some(Some(" ".to_owned()))),
    ];
    let opt_text = prop_oneof![Just(None), Just(Some(String::new())), Just(Some("x".to_owned()))];
    prop_oneof![
        4 => (prop::collection::vec(tag.clone(), 0..3), at.clone()).prop_map(|(tags, at)| {
            SimCommand::Register {
                iccid: iccid(),
                imsi: imsi(),
                msisdn: None,
                label: None,
                tags,
                at,
            }
        }),
        4 => (label, prop::option::of(prop::collection::vec(tag, 0..3)))
            .prop_map(|(label, tags)| SimCommand::UpdateDetails { label, tags }),
        4 => any::<bool>().prop_map(|enabled| SimCommand::SetImeiLock { enabled }),
        4 => (0u8..2).prop_map(|n| SimCommand::RecordImei {
            imei: Imei::parse(&format!("35209900176148{n}")).unwrap()
        }),
        4 => (id.clone(), at.clone())
            .prop_map(|(request_id, at)| SimCommand::RequestActivation { request_id, at }),
        4 => (id.clone(), at.clone())
            .prop_map(|(request_id, at)| SimCommand::ConfirmActivation { request_id, at }),
        4 => (id.clone(), at.clone()).prop_map(|(request_id, at)| SimCommand::FailActivation {
            request_id,
            reason: "x".into(),
            at
        }),
        4 => (id.clone(), at.clone())
            .prop_map(|(request_id, at)| SimCommand::RequestSuspension { request_id, at }),
        4 => (id.clone(), at.clone())
            .prop_map(|(request_id, at)| SimCommand::ConfirmSuspension { request_id, at }),
        4 => (id, at.clone()).prop_map(|(request_id, at)| SimCommand::FailSuspension {
            request_id,
            reason: "x".into(),
            at
        }),
        // Rare, so that sequences get somewhere before the end.
        1 => at.clone().prop_map(|at| SimCommand::Terminate { reason: None, at }),
        4 => (any::<bool>(), at.clone()).prop_map(|(enabled, at)| SimCommand::RecordProviderStatus {
            status: if enabled {
                ProviderStatus::Enabled
            } else {
                ProviderStatus::Disabled
            },
            at
        }),
        4 => (opt_text.clone(), opt_text, at).prop_map(|(network, ip_address, at)| {
            SimCommand::RecordConnectivity {
                network,
                country: None,
                rat: None,
                ip_address,
                at,
            }
        }),
        4 => (0i64..2, 0u64..3, 0u64..3, 0u64..3).prop_map(|(day, d, mo, mt)| {
            SimCommand::RecordUsage {
                period_start: t(day * 1440),
                period_end: t((day + 1) * 1440),
                data_bytes: d,
                sms_mo: mo,
                sms_mt: mt,
            }
        }),
    ]
}

/// Commands that report or set a value: sending the same one again right away must be a no-op.
fn is_idempotent(cmd: &SimCommand) -> bool {
    matches!(
        cmd,
        SimCommand::UpdateDetails { .. }
            | SimCommand::SetImeiLock { .. }
            | SimCommand::RecordImei { .. }
            | SimCommand::RecordProviderStatus { .. }
            | SimCommand::RecordConnectivity { .. }
            | SimCommand::RecordUsage { .. }
    )
}

/// A lifecycle event agrees with the pending change: a request finds none, an outcome settles
/// the pending one of its kind.
fn check_event(state: &Sim, event: &SimEvent) -> Result<(), TestCaseError> {
    match event {
        SimEvent::ActivationRequested { .. } | SimEvent::SuspensionRequested { .. } => {
            prop_assert!(state.pending_change().is_none(), "one pending change at most");
        }
        SimEvent::ActivationCompleted { request_id, .. } | SimEvent::ActivationFailed { request_id, .. } => {
            let p = state.pending_change().unwrap();
            prop_assert_eq!(p.kind, ChangeKind::Activation);
            prop_assert_eq!(p.request_id, *request_id);
        }
        SimEvent::SuspensionCompleted { request_id, .. } | SimEvent::SuspensionFailed { request_id, .. } => {
            let p = state.pending_change().unwrap();
            prop_assert_eq!(p.kind, ChangeKind::Suspension);
            prop_assert_eq!(p.request_id, *request_id);
        }
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_command_sequence_keeps_the_invariants(
        commands in prop::collection::vec(arb_command(), 1..40)
    ) {
        let (sim, history) = run_sequence(commands, check_event, |step: Step<'_, Sim>| {
            let (before, sim, cmd) = (step.before, step.after, step.command);
            if before.is_terminated() {
                prop_assert_eq!(step.outcome.as_ref().map_err(|e| e.code()), Err("SIM_TERMINATED"));
            }
            if !before.is_registered() && !matches!(cmd, SimCommand::Register { .. }) {
                prop_assert!(step.outcome.is_err());
            }
            if step.outcome.is_err() {
                return Ok(());
            }
            if is_idempotent(cmd) {
                prop_assert_eq!(sim.handle(cmd.clone()).map_err(|e| e.code()), Ok(vec![]), "no report twice");
            }
            // State invariants.
            if sim.is_terminated() {
                prop_assert!(sim.pending_change().is_none());
            }
            if before.is_terminated() {
                prop_assert_eq!(sim.status(), SimStatus::Terminated, "terminal");
            }
            prop_assert!(!before.ever_active() || sim.ever_active(), "ever_active is monotonic");
            prop_assert!(sim.tags().windows(2).all(|w| w[0] < w[1]), "tags sorted and unique");
            prop_assert!(sim.tags().len() <= MAX_TAGS);
            for p in sim.usage_periods() {
                if let Some(old) = before.usage_for(p.period_start) {
                    prop_assert!(p.data_bytes >= old.data_bytes && p.sms_mo >= old.sms_mo && p.sms_mt >= old.sms_mt);
                }
            }
            Ok(())
        })?;
        // Deltas add up to the totals, per period.
        for p in sim.usage_periods() {
            let sum: u64 = history.iter().filter_map(|e| match e {
                SimEvent::UsageRecorded { period_start, delta_data_bytes, .. } if *period_start == p.period_start => Some(*delta_data_bytes),
                _ => None,
            }).sum();
            prop_assert_eq!(sum, p.data_bytes);
        }
    }
}
