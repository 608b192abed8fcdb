//! Given/when/then tests of the SIM aggregate, one file per area.

mod controls;
mod details;
mod lifecycle;
mod observations;
mod provider_update;

use super::*;
use crate::testing::{iccid, imsi, t, uid};

pub(super) fn registered() -> SimEvent {
    SimEvent::SimRegistered {
        iccid: iccid(),
        imsi: imsi(),
        msisdn: None,
        label: None,
        tags: vec![],
        registered_at: t(0),
    }
}

pub(super) fn activated() -> Vec<SimEvent> {
    vec![
        registered(),
        SimEvent::ActivationRequested {
            request_id: uid(1),
            requested_at: t(1),
        },
        SimEvent::ActivationCompleted {
            request_id: uid(1),
            completed_at: t(2),
        },
    ]
}

pub(super) fn with(mut base: Vec<SimEvent>, more: SimEvent) -> Vec<SimEvent> {
    base.push(more);
    base
}

pub(super) fn update(label: Option<Option<&str>>, tags: Option<&[&str]>) -> SimCommand {
    SimCommand::UpdateDetails {
        label: label.map(|l| l.map(str::to_owned)),
        tags: tags.map(|ts| ts.iter().map(|s| s.to_string()).collect()),
    }
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// One of every command, for "everything is refused" checks.
pub(super) fn every_command() -> Vec<SimCommand> {
    vec![
        SimCommand::Register {
            iccid: iccid(),
            imsi: imsi(),
            msisdn: None,
            label: None,
            tags: vec![],
            at: t(9),
        },
        update(Some(Some("x")), None),
        SimCommand::SetImeiLock { enabled: true },
        SimCommand::RecordImei {
            imei: Imei::parse("352099001761481").unwrap(),
        },
        SimCommand::RequestActivation {
            request_id: uid(9),
            at: t(9),
        },
        SimCommand::ConfirmActivation {
            request_id: uid(1),
            at: t(9),
        },
        SimCommand::FailActivation {
            request_id: uid(1),
            reason: "x".into(),
            at: t(9),
        },
        SimCommand::RequestSuspension {
            request_id: uid(9),
            at: t(9),
        },
        SimCommand::ConfirmSuspension {
            request_id: uid(1),
            at: t(9),
        },
        SimCommand::FailSuspension {
            request_id: uid(1),
            reason: "x".into(),
            at: t(9),
        },
        SimCommand::Terminate {
            reason: None,
            at: t(9),
        },
        SimCommand::RecordProviderStatus {
            status: ProviderStatus::Enabled,
            at: t(9),
        },
        SimCommand::RecordConnectivity {
            network: Some("Telekom".into()),
            country: None,
            rat: None,
            ip_address: None,
            at: t(9),
        },
        SimCommand::RequestConnectivityReset {
            request_id: uid(1),
            at: t(1),
        },
        SimCommand::RequestAutoTopUp {
            request_id: uid(1),
            enabled: true,
            at: t(1),
        },
        SimCommand::SettleControl {
            control: SimControl::AutoTopUp,
            request_id: uid(1),
            outcome: ControlOutcome::Completed,
            at: t(1),
        },
        SimCommand::RecordUsage {
            period_start: t(0),
            period_end: t(1440),
            data_bytes: 1,
            sms_mo: 0,
            sms_mt: 0,
        },
        SimCommand::RequestProviderUpdate {
            request_id: uid(9),
            at: t(9),
        },
        SimCommand::RecordProviderDetails {
            label: Some(Some("portal".into())),
            imei_lock: Some(true),
            at: t(9),
        },
    ]
}
