//! What the simulator keeps per SIM. Identifiers are stored as numbers and rendered on demand,
//! and everything a SIM only gets once something happens to it (usage, SMS, events,
//! connectivity overrides) lives in a box that stays empty for idle SIMs: 100,000 SIMs fit in
//! a few tens of MB.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::quota::Quota;

#[derive(Clone, Debug)]
pub struct SimRecord {
    pub iccid: u64,
    pub imsi: u64,
    pub imsi_2: u64,
    /// Roaming into the China+ network: the second IMSI is the current one.
    pub on_imsi_2: bool,
    pub msisdn: u64,
    pub imei: Option<String>,
    pub imei_lock: bool,
    pub enabled: bool,
    pub activation: DateTime<Utc>,
    pub ip_address: String,
    pub label: Option<String>,
    /// Index into [`OPERATORS`] and [`RATS`].
    pub operator: u8,
    pub rat: u8,
    pub data: Quota,
    pub sms: Quota,
    pub auto_topup: bool,
    /// Top-up orders placed through the API (auto top-ups are not counted).
    pub api_top_ups: usize,
    pub extra: Option<Box<SimExtra>>,
}

#[derive(Clone, Debug, Default)]
pub struct SimExtra {
    pub usage: BTreeMap<NaiveDate, DayUsage>,
    pub sms: Vec<SmsRecord>,
    pub events: Vec<EventRecord>,
    pub connectivity: Option<ConnectivityOverride>,
    /// After a connectivity reset: the data session is down (the SIM only attached) until
    /// this simulated time, then a new one starts.
    pub reattach_at: Option<DateTime<Utc>>,
}

impl SimRecord {
    pub fn extra_mut(&mut self) -> &mut SimExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The SIM's number in the fleet (its IMSI is derived from it), a small stable id.
    pub fn serial(&self) -> u64 {
        self.imsi - super::generate::IMSI_BASE
    }

    pub fn current_imsi(&self) -> u64 {
        if self.on_imsi_2 {
            self.imsi_2
        } else {
            self.imsi
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayUsage {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Mobile-originated (sent by the device, received by the network: `volume_rx`).
    pub sms_mo: u64,
    /// Mobile-terminated (`volume_tx`).
    pub sms_mt: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsDirection {
    Mt,
    Mo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsState {
    Buffered,
    Delivered,
    Cancelled,
}

impl SmsState {
    pub fn wire(self) -> (u8, &'static str) {
        match self {
            SmsState::Buffered => (2, "BUFFERED"),
            SmsState::Delivered => (4, "DELIVERED"),
            SmsState::Cancelled => (6, "CANCELED"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SmsRecord {
    pub id: u64,
    pub direction: SmsDirection,
    pub state: SmsState,
    pub submitted: DateTime<Utc>,
    pub delivered: Option<DateTime<Utc>>,
    pub final_date: Option<DateTime<Utc>>,
    pub expiry: DateTime<Utc>,
    pub source_address: String,
    pub source_address_type: u16,
    pub payload: String,
    pub udh: Option<String>,
    pub dcs: u8,
}

#[derive(Clone, Debug)]
pub struct EventRecord {
    pub at: DateTime<Utc>,
    pub event_type: String,
    pub severity: &'static str,
    pub alert: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ConnectivityOverride {
    pub operator: Option<String>,
    pub country: Option<String>,
    pub rat: Option<String>,
}

pub struct Operator {
    pub id: &'static str,
    pub name: &'static str,
    pub country_id: &'static str,
    pub country: &'static str,
    pub iso: &'static str,
    pub country_code: &'static str,
    pub mcc: &'static str,
    pub mnc: &'static str,
    pub latitude: &'static str,
    pub longitude: &'static str,
}

pub const OPERATORS: [Operator; 6] = [
    Operator {
        id: "2",
        name: "T-Mobile",
        country_id: "74",
        country: "Germany",
        iso: "de",
        country_code: "49",
        mcc: "262",
        mnc: "01",
        latitude: "51",
        longitude: "9",
    },
    Operator {
        id: "3",
        name: "Vodafone",
        country_id: "74",
        country: "Germany",
        iso: "de",
        country_code: "49",
        mcc: "262",
        mnc: "02",
        latitude: "51",
        longitude: "9",
    },
    Operator {
        id: "17",
        name: "Orange",
        country_id: "73",
        country: "France",
        iso: "fr",
        country_code: "33",
        mcc: "208",
        mnc: "01",
        latitude: "46",
        longitude: "2",
    },
    Operator {
        id: "24",
        name: "Movistar",
        country_id: "195",
        country: "Spain",
        iso: "es",
        country_code: "34",
        mcc: "214",
        mnc: "07",
        latitude: "40",
        longitude: "-4",
    },
    Operator {
        id: "31",
        name: "KPN",
        country_id: "150",
        country: "Netherlands",
        iso: "nl",
        country_code: "31",
        mcc: "204",
        mnc: "08",
        latitude: "52.5",
        longitude: "5.75",
    },
    Operator {
        id: "44",
        name: "AT&T",
        country_id: "226",
        country: "United States",
        iso: "us",
        country_code: "1",
        mcc: "310",
        mnc: "410",
        latitude: "38",
        longitude: "-97",
    },
];

/// `(rat_type_id, description)` as in the PDP context.
pub const RATS: [(&str, &str); 5] = [
    ("2", "2G"),
    ("1", "3G"),
    ("6", "4G"),
    ("10", "5G"),
    ("8", "NB-IoT"),
];
