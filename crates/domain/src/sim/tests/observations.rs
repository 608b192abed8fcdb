use super::*;
use crate::testing::{given, t};
use crate::{DomainError, ErrorKind};

// ---- connectivity ----

fn connectivity(network: Option<&str>, ip: Option<&str>, at: i64) -> SimCommand {
    SimCommand::RecordConnectivity {
        network: network.map(str::to_owned),
        country: Some("DE".into()),
        rat: Some("LTE-M".into()),
        ip_address: ip.map(str::to_owned),
        at: t(at),
    }
}

/// What a connectivity report records when it is news, for the reports `connectivity` makes.
fn connectivity_changed(network: &str, ip: Option<&str>, at: i64) -> SimEvent {
    SimEvent::ConnectivityChanged {
        network: Some(network.into()),
        country: Some("DE".into()),
        rat: Some("LTE-M".into()),
        ip_address: ip.map(str::to_owned),
        observed_at: t(at),
    }
}

#[test]
fn connectivity_is_recorded_only_when_something_changed() {
    let first = connectivity_changed("Telekom", Some("10.0.0.1"), 5);
    let state = given::<Sim>(&[registered()])
        .when(connectivity(Some("Telekom"), Some("10.0.0.1"), 5))
        .then(std::slice::from_ref(&first));
    assert_eq!(state.connectivity().last_seen_at, Some(t(5)));
    let seen = [registered(), first];
    for (report, recorded) in [
        (connectivity(Some("Telekom"), Some("10.0.0.1"), 6), vec![]),
        (
            connectivity(Some("Vodafone"), Some("10.0.0.1"), 7),
            vec![connectivity_changed("Vodafone", Some("10.0.0.1"), 7)],
        ),
        // An empty string from the provider means unknown, like null.
        (
            connectivity(Some("Telekom"), Some(""), 8),
            vec![connectivity_changed("Telekom", None, 8)],
        ),
    ] {
        given::<Sim>(&seen).when(report).then(&recorded);
    }
}

// ---- usage ----

fn usage(data: u64, mo: u64, mt: u64) -> SimCommand {
    SimCommand::RecordUsage {
        period_start: t(0),
        period_end: t(1440),
        data_bytes: data,
        sms_mo: mo,
        sms_mt: mt,
    }
}

fn usage_recorded(totals: [u64; 3], deltas: [u64; 3]) -> SimEvent {
    SimEvent::UsageRecorded {
        period_start: t(0),
        period_end: t(1440),
        data_bytes: totals[0],
        sms_mo: totals[1],
        sms_mt: totals[2],
        delta_data_bytes: deltas[0],
        delta_sms_mo: deltas[1],
        delta_sms_mt: deltas[2],
    }
}

#[test]
fn usage_of_a_new_period_is_recorded_with_deltas_equal_to_totals() {
    let state = given::<Sim>(&[registered()])
        .when(usage(2803, 1, 2))
        .then(&[usage_recorded([2803, 1, 2], [2803, 1, 2])]);
    assert_eq!(state.usage_for(t(0)).map(|p| p.data_bytes), Some(2803));
}

#[test]
fn growing_totals_record_the_difference_and_the_same_report_twice_records_nothing() {
    let seen = [registered(), usage_recorded([1000, 1, 2], [1000, 1, 2])];
    given::<Sim>(&seen).when(usage(1000, 1, 2)).then(&[]);
    given::<Sim>(&seen)
        .when(usage(1500, 1, 3))
        .then(&[usage_recorded([1500, 1, 3], [500, 0, 1])]);
}

#[test]
fn an_empty_new_period_records_nothing() {
    given::<Sim>(&[registered()]).when(usage(0, 0, 0)).then(&[]);
}

#[test]
fn shrinking_totals_are_refused() {
    let seen = [registered(), usage_recorded([1000, 1, 2], [1000, 1, 2])];
    let e = given::<Sim>(&seen)
        .when(usage(2000, 0, 2))
        .then_error("USAGE_DECREASED");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("sms_mo 0 < 1"), "{e}");
}

#[test]
fn usage_periods_must_be_well_formed() {
    let e = given::<Sim>(&[registered()])
        .when(SimCommand::RecordUsage {
            period_start: t(10),
            period_end: t(10),
            data_bytes: 1,
            sms_mo: 0,
            sms_mt: 0,
        })
        .then_error("INVALID_USAGE_PERIOD");
    assert_eq!(e.kind(), ErrorKind::Validation);
    // A period is identified by its start; its end cannot change between reports.
    let seen = [registered(), usage_recorded([1000, 1, 2], [1000, 1, 2])];
    given::<Sim>(&seen)
        .when(SimCommand::RecordUsage {
            period_start: t(0),
            period_end: t(60),
            data_bytes: 2000,
            sms_mo: 1,
            sms_mt: 2,
        })
        .then_error("INVALID_USAGE_PERIOD");
}

#[test]
fn periods_are_kept_apart() {
    let seen = [registered(), usage_recorded([1000, 1, 2], [1000, 1, 2])];
    let state = given::<Sim>(&seen)
        .when(SimCommand::RecordUsage {
            period_start: t(-1440),
            period_end: t(0),
            data_bytes: 10,
            sms_mo: 0,
            sms_mt: 0,
        })
        .then(&[SimEvent::UsageRecorded {
            period_start: t(-1440),
            period_end: t(0),
            data_bytes: 10,
            sms_mo: 0,
            sms_mt: 0,
            delta_data_bytes: 10,
            delta_sms_mo: 0,
            delta_sms_mt: 0,
        }]);
    let starts: Vec<_> = state.usage_periods().iter().map(|p| p.period_start).collect();
    assert_eq!(starts, [t(-1440), t(0)], "kept sorted");
}

// ---- reconciliation with the provider's daily total ----

fn reconcile(data: u64, mo: u64, mt: u64) -> SimCommand {
    SimCommand::ReconcileUsage {
        period_start: t(0),
        period_end: t(1440),
        data_bytes: data,
        sms_mo: mo,
        sms_mt: mt,
    }
}

fn usage_reconciled(polled: [u64; 3], recorded: [u64; 3]) -> SimEvent {
    SimEvent::UsageReconciled {
        period_start: t(0),
        period_end: t(1440),
        data_bytes: polled[0],
        sms_mo: polled[1],
        sms_mt: polled[2],
        recorded_data_bytes: recorded[0],
        recorded_sms_mo: recorded[1],
        recorded_sms_mt: recorded[2],
        difference_data_bytes: polled[0] as i64 - recorded[0] as i64,
        difference_sms_mo: polled[1] as i64 - recorded[1] as i64,
        difference_sms_mt: polled[2] as i64 - recorded[2] as i64,
    }
}

#[test]
fn the_polled_total_of_a_closed_day_replaces_a_higher_streamed_one_and_records_the_difference() {
    let seen = [registered(), usage_recorded([1500, 2, 1], [1500, 2, 1])];
    let state = given::<Sim>(&seen)
        .when(reconcile(1200, 2, 1))
        .then(&[usage_reconciled([1200, 2, 1], [1500, 2, 1])]);
    let period = state.usage_for(t(0)).unwrap();
    assert_eq!((period.data_bytes, period.reconciled), (1200, true));
    // Below or above: the reference moves either way when the provider's total changes.
    given::<Sim>(&[
        seen[0].clone(),
        seen[1].clone(),
        usage_reconciled([1200, 2, 1], [1500, 2, 1]),
    ])
    .when(reconcile(1300, 2, 1))
    .then(&[usage_reconciled([1300, 2, 1], [1200, 2, 1])]);
}

#[test]
fn a_reconciled_day_is_not_moved_by_later_reports_and_the_same_reference_records_nothing() {
    let seen = [
        registered(),
        usage_recorded([1500, 2, 1], [1500, 2, 1]),
        usage_reconciled([1200, 2, 1], [1500, 2, 1]),
    ];
    // A streamed record (or an older poll) arriving after the reference: nothing.
    given::<Sim>(&seen).when(usage(1800, 3, 1)).then(&[]);
    given::<Sim>(&seen).when(usage(100, 0, 0)).then(&[]);
    given::<Sim>(&seen).when(reconcile(1200, 2, 1)).then(&[]);
}

#[test]
fn an_equal_total_is_still_fixed_as_the_reference_with_no_difference() {
    let seen = [registered(), usage_recorded([1000, 0, 0], [1000, 0, 0])];
    given::<Sim>(&seen)
        .when(reconcile(1000, 0, 0))
        .then(&[usage_reconciled([1000, 0, 0], [1000, 0, 0])]);
    // A day with no usage anywhere needs no reference.
    given::<Sim>(&[registered()]).when(reconcile(0, 0, 0)).then(&[]);
    given::<Sim>(&[registered()])
        .when(reconcile(700, 0, 1))
        .then(&[usage_reconciled([700, 0, 1], [0, 0, 0])]);
}

#[test]
fn a_reconciliation_must_name_the_period_as_recorded() {
    let seen = [registered(), usage_recorded([1000, 1, 2], [1000, 1, 2])];
    given::<Sim>(&seen)
        .when(SimCommand::ReconcileUsage {
            period_start: t(0),
            period_end: t(60),
            data_bytes: 900,
            sms_mo: 1,
            sms_mt: 2,
        })
        .then_error("INVALID_USAGE_PERIOD");
}
