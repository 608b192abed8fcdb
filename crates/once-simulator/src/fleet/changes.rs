//! Changes to a SIM's settings (status, label, IMEI lock, IMEI), its connectivity, and the
//! event log those changes write to.

use chrono::{DateTime, Duration, Utc};

use super::journal::{EventKind, Journal};
use super::records::{ConnectivityOverride, EventRecord, SimRecord, RATS};
use super::{Fleet, FleetError, SimChange};

const MAX_EVENTS_PER_SIM: usize = 200;

impl Fleet {
    pub fn change(&mut self, iccid: u64, change: &SimChange) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        if let Some(enabled) = change.enabled {
            set_enabled(sim, journal, enabled, now);
        }
        if let Some(label) = &change.label {
            sim.label = Some(label.clone());
        }
        if let Some(lock) = change.imei_lock {
            sim.imei_lock = lock;
        }
        Ok(())
    }

    /// What the API refuses before changing anything: 1NCE lets an expired SIM (a quota
    /// expired) be modified only by an extension (a top-up), so a label or IMEI lock change is
    /// refused with 422. A status alone is left to `change`, as before.
    pub fn check_api_change(&self, iccid: u64, change: &SimChange) -> Result<(), FleetError> {
        let sim = self.sim(iccid)?;
        let settings = change.label.is_some() || change.imei_lock.is_some();
        if settings && (sim.data.expired || sim.sms.expired) {
            return Err(FleetError::Expired(iccid.to_string()));
        }
        Ok(())
    }

    /// Applies all changes or none (every ICCID is checked first).
    pub fn change_many(&mut self, changes: &[(u64, SimChange)]) -> Result<(), FleetError> {
        for (iccid, _) in changes {
            self.sim(*iccid)?;
        }
        for (iccid, change) in changes {
            self.change(*iccid, change)?;
        }
        Ok(())
    }

    pub fn set_imei(&mut self, iccid: u64, imei: &str) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        if sim.imei.as_deref() != Some(imei) {
            sim.imei = Some(imei.to_owned());
            push_event(sim, journal, now, "Update location", "Info", false);
        }
        Ok(())
    }

    pub fn set_connectivity(
        &mut self,
        iccid: u64,
        ip_address: Option<String>,
        over: ConnectivityOverride,
    ) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        if let Some(ip) = ip_address {
            sim.ip_address = ip;
        }
        // A known RAT name maps onto its id; anything else is kept as given.
        if let Some(rat) = &over.rat {
            if let Some(i) = RATS.iter().position(|(_, d)| d.eq_ignore_ascii_case(rat)) {
                sim.rat = i as u8;
            }
        }
        let (moved, rat_changed) = (
            over.operator.is_some() || over.country.is_some(),
            over.rat.is_some(),
        );
        let extra = sim.extra_mut();
        let current = extra.connectivity.get_or_insert_with(Default::default);
        if over.operator.is_some() {
            current.operator = over.operator;
        }
        if over.country.is_some() {
            current.country = over.country;
        }
        if over.rat.is_some() {
            current.rat = over.rat;
        }
        // The network reports a new location, and a new radio access on the open PDP context
        // (stream only: the provider's event log has no such entries here).
        if moved {
            journal.event(sim, now, EventKind::UpdateLocation, "Update location");
        }
        if rat_changed {
            let context = super::journal::pdp_context(sim.iccid, sim.activation);
            journal.event(sim, now, EventKind::UpdatePdp { context }, "Update PDP Context");
        }
        Ok(())
    }

    pub fn reset_connectivity(&mut self, iccid: u64) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        push_event(sim, journal, now, super::RESET_EVENT, "Info", false);
        push_event(sim, journal, now, "Delete PDP Context", "Info", false);
        sim.extra_mut().reattach_at = Some(now + super::RESET_REATTACH);
        Ok(())
    }

    /// The SIM's events, oldest first: the activation (derived, not stored) and what happened since.
    pub fn events_of(&self, iccid: u64) -> Result<Vec<EventRecord>, FleetError> {
        let sim = self.sim(iccid)?;
        let mut events = vec![
            EventRecord {
                at: sim.activation,
                event_type: "Status of SIM changed from 'Issued' to 'Activated'".into(),
                severity: "Info",
                alert: false,
            },
            EventRecord {
                at: sim.activation + Duration::minutes(3),
                event_type: "Create PDP Context".into(),
                severity: "Info",
                alert: false,
            },
        ];
        if let Some(extra) = &sim.extra {
            events.extend(extra.events.iter().cloned());
        }
        Ok(events)
    }
}

pub(super) fn set_enabled(sim: &mut SimRecord, journal: &mut Journal, enabled: bool, now: DateTime<Utc>) {
    if sim.enabled == enabled {
        return;
    }
    sim.enabled = enabled;
    let (from, to) = if enabled {
        ("Deactivated", "Activated")
    } else {
        ("Activated", "Deactivated")
    };
    push_event(
        sim,
        journal,
        now,
        &format!("Status of SIM changed from '{from}' to '{to}'"),
        "Info",
        false,
    );
}

/// Adds to the SIM's event log (`/events`) and notes the event for the Data Streamer.
pub(super) fn push_event(
    sim: &mut SimRecord,
    journal: &mut Journal,
    at: DateTime<Utc>,
    text: &str,
    severity: &'static str,
    alert: bool,
) {
    let events = &mut sim.extra_mut().events;
    if events.len() >= MAX_EVENTS_PER_SIM {
        events.remove(0);
    }
    events.push(EventRecord {
        at,
        event_type: text.to_owned(),
        severity,
        alert,
    });
    journal.logged_event(sim, at, text);
}
