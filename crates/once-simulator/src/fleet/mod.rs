//! The simulated account's state: SIMs sorted by ICCID, their quotas, usage, SMS and events,
//! and the simulated clock. All changes go through here, under one lock held by the caller.
//!
//! This module holds the fleet itself, its construction and lookups; the `impl Fleet` blocks
//! for the rest are spread over `changes` (SIM settings, connectivity, events), `usage` (usage
//! and quotas), `sms` and `autonomy` (what the clock drives).

mod autonomy;
mod changes;
mod generate;
pub mod journal;
pub mod quota;
pub mod records;
mod sms;
mod usage;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::config::SimulatorConfig;
use crate::format::{mix, BYTES_PER_MB};
use generate::{generate_sim, FleetShape};
use journal::Journal;
use records::SimRecord;

pub use sms::NewSms;

/// The event a connectivity reset through the API records (counted by `Simulator::resets`).
pub const RESET_EVENT: &str = "Connectivity reset requested";
/// How long after a reset the SIM's data session is down (our choice; 1NCE resets
/// asynchronously and the device re-attaches by itself).
pub const RESET_REATTACH: chrono::Duration = chrono::Duration::seconds(30);
pub use usage::quota_of;

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
    /// What the Data Streamer is still to report (empty when no stream is configured).
    pub journal: Journal,
}

/// A SIM update as `PUT /v1/sims/{iccid}` carries it; `None` leaves the field alone.
#[derive(Debug, Clone, Default)]
pub struct SimChange {
    pub enabled: Option<bool>,
    pub label: Option<String>,
    pub imei_lock: Option<bool>,
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
            journal: Journal::new(config.stream.is_on(), config.stream.buffer_max),
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
        Ok(self.sim_and_journal(iccid)?.0)
    }

    /// The SIM to change and the journal to note the change in (two fields, borrowed apart).
    fn sim_and_journal(&mut self, iccid: u64) -> Result<(&mut SimRecord, &mut Journal), FleetError> {
        let i = *self.index.get(&iccid).ok_or(FleetError::UnknownSim)?;
        Ok((&mut self.sims[i], &mut self.journal))
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
}
