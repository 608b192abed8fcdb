//! The simulated account's state: SIMs sorted by ICCID, their quotas, usage, SMS and events,
//! and the simulated clock. All changes go through here, under one lock held by the caller.

mod autonomy;
mod generate;
pub mod quota;
pub mod records;

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::SimulatorConfig;
use crate::format::{mix, BYTES_PER_MB};
use generate::{generate_sim, FleetShape};
use quota::{Quota, QuotaKind};
use records::{
    ConnectivityOverride, DayUsage, EventRecord, SimRecord, SmsDirection, SmsRecord, SmsState, RATS,
};

/// Usage is answered for at most this far back; older days are dropped.
pub const USAGE_MONTHS: u32 = 6;
const MAX_SMS_PER_SIM: usize = 500;
const MAX_EVENTS_PER_SIM: usize = 200;
/// An MT SMS is delivered this long (simulated) after submission when the clock drives it.
const MT_DELIVERY_DELAY_SECS: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("SIM not found")]
    UnknownSim,
    #[error("SMS not found")]
    UnknownSms,
    #[error(
        "The following SIMs are expired and cannot be modified via API. Only extensions are permitted: {0}"
    )]
    Expired(String),
    #[error("{0}")]
    Invalid(String),
}

pub struct Fleet {
    pub now: DateTime<Utc>,
    sims: Vec<SimRecord>,
    index: HashMap<u64, usize>,
    next_serial: u64,
    shape: FleetShape,
    pub autonomous: bool,
    topup_data_bytes: u64,
    topup_sms: u64,
    rng: StdRng,
    next_sms_id: u64,
    next_order_id: u64,
}

/// A SIM update as `PUT /v1/sims/{iccid}` carries it; `None` leaves the field alone.
#[derive(Debug, Clone, Default)]
pub struct SimChange {
    pub enabled: Option<bool>,
    pub label: Option<String>,
    pub imei_lock: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewSms {
    pub source_address: String,
    pub source_address_type: u16,
    pub payload: String,
    pub udh: Option<String>,
    pub dcs: u8,
    pub expiry: Option<DateTime<Utc>>,
}

impl Fleet {
    pub fn new(config: &SimulatorConfig) -> Self {
        let now = config.start_time.unwrap_or_else(Utc::now);
        // Whole milliseconds: the wire formats carry no more.
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let shape = FleetShape {
            seed: config.seed,
            data_total_bytes: config.data_quota_mb * BYTES_PER_MB,
            sms_total: config.sms_quota,
        };
        let sims: Vec<SimRecord> = (0..config.sims as u64)
            .map(|serial| generate_sim(&shape, serial, now))
            .collect();
        let index = sims.iter().enumerate().map(|(i, s)| (s.iccid, i)).collect();
        Self {
            now,
            sims,
            index,
            next_serial: config.sims as u64,
            rng: StdRng::seed_from_u64(mix(config.seed ^ 0xA5A5)),
            shape,
            autonomous: config.autonomous,
            topup_data_bytes: config.topup_data_mb * BYTES_PER_MB,
            topup_sms: config.topup_sms,
            next_sms_id: 1,
            next_order_id: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.sims.len()
    }

    /// All SIMs, sorted by ICCID.
    pub fn sims(&self) -> &[SimRecord] {
        &self.sims
    }

    pub fn sim(&self, iccid: u64) -> Result<&SimRecord, FleetError> {
        self.index
            .get(&iccid)
            .map(|&i| &self.sims[i])
            .ok_or(FleetError::UnknownSim)
    }

    fn sim_mut(&mut self, iccid: u64) -> Result<&mut SimRecord, FleetError> {
        let i = *self.index.get(&iccid).ok_or(FleetError::UnknownSim)?;
        Ok(&mut self.sims[i])
    }

    pub fn add_sim(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        let sim = generate_sim(&self.shape, serial, self.now);
        let iccid = sim.iccid;
        // Serials only grow and ICCIDs grow with them, so pushing keeps the order.
        self.index.insert(iccid, self.sims.len());
        self.sims.push(sim);
        iccid
    }

    pub fn change(&mut self, iccid: u64, change: &SimChange) -> Result<(), FleetError> {
        let now = self.now;
        let sim = self.sim_mut(iccid)?;
        if let Some(enabled) = change.enabled {
            set_enabled(sim, enabled, now);
        }
        if let Some(label) = &change.label {
            sim.label = Some(label.clone());
        }
        if let Some(lock) = change.imei_lock {
            sim.imei_lock = lock;
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
        let sim = self.sim_mut(iccid)?;
        if sim.imei.as_deref() != Some(imei) {
            sim.imei = Some(imei.to_owned());
            push_event(sim, now, "Update location", "Info", false);
        }
        Ok(())
    }

    pub fn set_connectivity(
        &mut self,
        iccid: u64,
        ip_address: Option<String>,
        over: ConnectivityOverride,
    ) -> Result<(), FleetError> {
        let sim = self.sim_mut(iccid)?;
        if let Some(ip) = ip_address {
            sim.ip_address = ip;
        }
        // A known RAT name maps onto its id; anything else is kept as given.
        if let Some(rat) = &over.rat {
            if let Some(i) = RATS.iter().position(|(_, d)| d.eq_ignore_ascii_case(rat)) {
                sim.rat = i as u8;
            }
        }
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
        Ok(())
    }

    pub fn reset_connectivity(&mut self, iccid: u64) -> Result<(), FleetError> {
        let now = self.now;
        let sim = self.sim_mut(iccid)?;
        push_event(sim, now, "Connectivity reset requested", "Info", false);
        push_event(sim, now, "Delete PDP Context", "Info", false);
        Ok(())
    }

    /// Records usage on `date` and consumes the quotas by it (as far as they reach).
    pub fn add_usage(
        &mut self,
        iccid: u64,
        date: NaiveDate,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
    ) -> Result<(), FleetError> {
        let now = self.now;
        let (topup_data, topup_sms) = (self.topup_data_bytes, self.topup_sms);
        let sim = self.sim_mut(iccid)?;
        // Downstream dominates for IoT devices polling their backend.
        let rx = data_bytes - data_bytes * 3 / 10;
        record_usage(
            sim,
            date,
            DayUsage {
                rx_bytes: rx,
                tx_bytes: data_bytes - rx,
                sms_mo,
                sms_mt,
            },
            now,
        );
        sim.data.consume(data_bytes, now);
        sim.sms.consume(sms_mo + sms_mt, now);
        auto_top_up(sim, topup_data, topup_sms, now);
        Ok(())
    }

    pub fn consume_quota_to(
        &mut self,
        iccid: u64,
        kind: QuotaKind,
        used_percent: f64,
    ) -> Result<(), FleetError> {
        let now = self.now;
        quota_mut(self.sim_mut(iccid)?, kind).set_used_percent(used_percent, now);
        Ok(())
    }

    pub fn expire_quota(&mut self, iccid: u64, kind: QuotaKind) -> Result<(), FleetError> {
        let now = self.now;
        let sim = self.sim_mut(iccid)?;
        quota_mut(sim, kind).expire(now);
        let what = match kind {
            QuotaKind::Data => "Data",
            QuotaKind::Sms => "SMS",
        };
        push_event(sim, now, &format!("{what} quota expired"), "Warning", true);
        Ok(())
    }

    /// The standard top-up product for each SIM, as one order; refused as a whole when a SIM
    /// is unknown or its quota has expired (1NCE then only allows an extension).
    pub fn top_up(&mut self, iccids: &[u64]) -> Result<u64, FleetError> {
        let mut expired = Vec::new();
        for iccid in iccids {
            let sim = self.sim(*iccid)?;
            if sim.data.expired || sim.sms.expired {
                expired.push(iccid.to_string());
            }
        }
        if !expired.is_empty() {
            return Err(FleetError::Expired(expired.join(", ")));
        }
        let now = self.now;
        let (data, sms) = (self.topup_data_bytes, self.topup_sms);
        for iccid in iccids {
            let sim = self.sim_mut(*iccid)?;
            sim.data.add(data, now);
            sim.sms.add(sms, now);
            sim.api_top_ups += 1;
            push_event(sim, now, "Top up of data and SMS volume ordered", "Info", false);
        }
        let order = self.next_order_id;
        self.next_order_id += 1;
        Ok(order)
    }

    pub fn set_auto_top_up(&mut self, iccids: &[u64], enabled: bool) -> Result<(), FleetError> {
        for iccid in iccids {
            self.sim(*iccid)?;
        }
        for iccid in iccids {
            self.sim_mut(*iccid)?.auto_topup = enabled;
        }
        Ok(())
    }

    /// An MT SMS: delivered at once when nothing runs by itself, else after a short simulated
    /// delay on the clock (so a client can see it buffered, and cancel it).
    pub fn send_mt_sms(&mut self, iccid: u64, sms: NewSms) -> Result<u64, FleetError> {
        let now = self.now;
        let id = self.next_sms_id;
        let autonomous = self.autonomous;
        let sim = self.sim_mut(iccid)?;
        let mut record = SmsRecord {
            id,
            direction: SmsDirection::Mt,
            state: SmsState::Buffered,
            submitted: now,
            delivered: None,
            final_date: None,
            expiry: sms.expiry.unwrap_or(now + Duration::days(1)),
            source_address: sms.source_address,
            source_address_type: sms.source_address_type,
            payload: sms.payload,
            udh: sms.udh,
            dcs: sms.dcs,
        };
        if !autonomous {
            deliver(&mut record, now);
        }
        push_sms(sim, record);
        record_usage(
            sim,
            now.date_naive(),
            DayUsage {
                sms_mt: 1,
                ..Default::default()
            },
            now,
        );
        sim.sms.consume(1, now);
        self.next_sms_id += 1;
        Ok(id)
    }

    /// A message from the device: counted as MO usage, consuming the SMS quota.
    pub fn receive_mo_sms(
        &mut self,
        iccid: u64,
        payload: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, FleetError> {
        let id = self.next_sms_id;
        let sim = self.sim_mut(iccid)?;
        let msisdn = sim.msisdn.to_string();
        push_sms(
            sim,
            SmsRecord {
                id,
                direction: SmsDirection::Mo,
                state: SmsState::Delivered,
                submitted: at,
                delivered: Some(at),
                final_date: Some(at),
                expiry: at + Duration::days(1),
                source_address: msisdn,
                source_address_type: 145,
                payload: payload.to_owned(),
                udh: None,
                dcs: 0,
            },
        );
        record_usage(
            sim,
            at.date_naive(),
            DayUsage {
                sms_mo: 1,
                ..Default::default()
            },
            at,
        );
        sim.sms.consume(1, at);
        self.next_sms_id += 1;
        Ok(id)
    }

    /// Cancels a buffered MT SMS; a delivered or received one can no longer be cancelled.
    pub fn cancel_sms(&mut self, iccid: u64, id: u64) -> Result<(), FleetError> {
        let now = self.now;
        let sim = self.sim_mut(iccid)?;
        let sms = sim
            .extra
            .as_mut()
            .and_then(|e| e.sms.iter_mut().find(|s| s.id == id))
            .ok_or(FleetError::UnknownSms)?;
        match (sms.direction, sms.state) {
            (SmsDirection::Mt, SmsState::Buffered) => {
                sms.state = SmsState::Cancelled;
                sms.final_date = Some(now);
                Ok(())
            }
            (_, SmsState::Cancelled) => Ok(()),
            _ => Err(FleetError::Invalid(
                "The SMS has already been delivered and cannot be cancelled.".into(),
            )),
        }
    }

    pub fn sms_of(&self, iccid: u64) -> Result<&[SmsRecord], FleetError> {
        Ok(self
            .sim(iccid)?
            .extra
            .as_ref()
            .map(|e| e.sms.as_slice())
            .unwrap_or(&[]))
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

    pub fn usage_between(
        &self,
        iccid: u64,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<(NaiveDate, DayUsage)>, FleetError> {
        let sim = self.sim(iccid)?;
        Ok(start
            .iter_days()
            .take_while(|d| *d <= end)
            .map(|d| {
                let usage = sim
                    .extra
                    .as_ref()
                    .and_then(|e| e.usage.get(&d).copied())
                    .unwrap_or_default();
                (d, usage)
            })
            .collect())
    }

    /// The earliest day usage is answered for.
    pub fn usage_horizon(&self) -> NaiveDate {
        self.now
            .date_naive()
            .checked_sub_months(chrono::Months::new(USAGE_MONTHS))
            .unwrap_or(NaiveDate::MIN)
    }
}

pub fn quota_of(sim: &SimRecord, kind: QuotaKind) -> &Quota {
    match kind {
        QuotaKind::Data => &sim.data,
        QuotaKind::Sms => &sim.sms,
    }
}

fn quota_mut(sim: &mut SimRecord, kind: QuotaKind) -> &mut Quota {
    match kind {
        QuotaKind::Data => &mut sim.data,
        QuotaKind::Sms => &mut sim.sms,
    }
}

fn set_enabled(sim: &mut SimRecord, enabled: bool, now: DateTime<Utc>) {
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
        now,
        &format!("Status of SIM changed from '{from}' to '{to}'"),
        "Info",
        false,
    );
}

fn push_event(sim: &mut SimRecord, at: DateTime<Utc>, text: &str, severity: &'static str, alert: bool) {
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
}

fn push_sms(sim: &mut SimRecord, sms: SmsRecord) {
    let list = &mut sim.extra_mut().sms;
    if list.len() >= MAX_SMS_PER_SIM {
        list.remove(0);
    }
    list.push(sms);
}

fn deliver(sms: &mut SmsRecord, at: DateTime<Utc>) {
    sms.state = SmsState::Delivered;
    sms.delivered = Some(at);
    sms.final_date = Some(at);
}

fn record_usage(sim: &mut SimRecord, date: NaiveDate, add: DayUsage, now: DateTime<Utc>) {
    let usage = &mut sim.extra_mut().usage;
    let day = usage.entry(date).or_default();
    day.rx_bytes += add.rx_bytes;
    day.tx_bytes += add.tx_bytes;
    day.sms_mo += add.sms_mo;
    day.sms_mt += add.sms_mt;
    // Days beyond what the API answers are dropped, so a long-running simulator stays small.
    let horizon = now
        .date_naive()
        .checked_sub_months(chrono::Months::new(USAGE_MONTHS + 1))
        .unwrap_or(NaiveDate::MIN);
    while usage.first_key_value().is_some_and(|(d, _)| *d < horizon) {
        usage.pop_first();
    }
}

/// 1NCE's auto top-up: an exhausted data quota is topped up with the standard product.
fn auto_top_up(sim: &mut SimRecord, data: u64, sms: u64, now: DateTime<Utc>) {
    if sim.auto_topup && !sim.data.expired && sim.data.remaining == 0 {
        sim.data.add(data, now);
        sim.sms.add(sms, now);
        push_event(sim, now, "Auto top up of data and SMS volume", "Info", false);
    }
}
