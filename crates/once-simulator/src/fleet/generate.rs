//! The generated fleet: every SIM derives from (seed, serial number) alone, so the same seed
//! always gives the same fleet and a SIM added later does not shift the others.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::quota::Quota;
use super::records::{SimRecord, OPERATORS, RATS};
use crate::format::{mix, BYTES_PER_MB};

/// 1NCE ICCIDs start with 8988280666 (10 digits); nine more make the 19-digit form.
const ICCID_PREFIX: u64 = 8_988_280_666_000_000_000;
pub const IMSI_BASE: u64 = 901_405_100_000_000;
const IMSI_2_BASE: u64 = 901_405_200_000_000;
const MSISDN_BASE: u64 = 882_285_100_000_000;
/// Serials step by this with a per-SIM offset below it, so ICCIDs are sorted by serial but not
/// contiguous (a client must not guess them).
const SERIAL_STEP: u64 = 7;

const LABEL_WORDS: [&str; 10] = [
    "tracker",
    "meter",
    "gateway",
    "sensor",
    "pump",
    "Zähler",
    "kiosk",
    "trailer",
    "cold-chain",
    "camera",
];

pub struct FleetShape {
    pub seed: u64,
    pub data_total_bytes: u64,
    pub sms_total: u64,
}

pub fn iccid_for(seed: u64, serial: u64) -> u64 {
    let base = mix(seed) % 100_000_000;
    ICCID_PREFIX + base + serial * SERIAL_STEP + mix(seed ^ serial.rotate_left(17)) % SERIAL_STEP
}

pub fn generate_sim(shape: &FleetShape, serial: u64, now: DateTime<Utc>) -> SimRecord {
    let mut rng = StdRng::seed_from_u64(mix(shape.seed.wrapping_mul(0x1000_0001) ^ serial));
    let iccid = iccid_for(shape.seed, serial);
    let activation =
        now - Duration::days(rng.random_range(20..1500)) - Duration::seconds(rng.random_range(0..86_400));
    let imei = (rng.random_range(0..100) >= 5).then(|| {
        let body = format!("35{:06}{:06}", rng.random_range(0..1_000_000), serial % 1_000_000);
        format!("{body}{}", crate::format::luhn_digit(&body))
    });
    let label = match rng.random_range(0..10) {
        0 | 1 => None,
        2 => Some(format!(
            "DX-{:03}-B{:02}",
            serial % 1000,
            rng.random_range(0..100)
        )),
        _ => Some(format!(
            "{} {}",
            LABEL_WORDS[rng.random_range(0..LABEL_WORDS.len())],
            rng.random_range(1..5000)
        )),
    };
    // Most quotas are lightly used, some near the threshold, a few exhausted.
    let used_share = match rng.random_range(0..100) {
        0..=69 => rng.random_range(0.0..0.6),
        70..=89 => rng.random_range(0.6..0.95),
        90..=96 => rng.random_range(0.95..1.0),
        _ => 1.0,
    };
    let data_remaining = ((shape.data_total_bytes as f64) * (1.0 - used_share)) as u64;
    let sms_remaining = rng.random_range(0..=shape.sms_total);
    // 1NCE quotas last the SIM's lifetime (10 years); a few expire within the next 60 days
    // so that a running clock shows expiries.
    let expiry = if rng.random_range(0..100) < 2 {
        now + Duration::hours(rng.random_range(1..60 * 24))
    } else {
        activation + Duration::days(3650)
    };
    let data = Quota::new(
        shape.data_total_bytes,
        data_remaining,
        expiry,
        activation + Duration::days(rng.random_range(1..20)),
    );
    let sms = Quota::new(shape.sms_total, sms_remaining, expiry, activation);
    SimRecord {
        iccid,
        imsi: IMSI_BASE + serial,
        imsi_2: IMSI_2_BASE + serial,
        on_imsi_2: rng.random_range(0..50) == 0,
        msisdn: MSISDN_BASE + serial,
        imei,
        imei_lock: rng.random_range(0..4) == 0,
        enabled: rng.random_range(0..100) >= 8,
        activation,
        // Distinct per SIM, never a .0 network address: 254 hosts per /24.
        ip_address: format!(
            "10.{}.{}.{}",
            (serial / (254 * 256)) % 256,
            (serial / 254) % 256,
            serial % 254 + 1
        ),
        label,
        operator: rng.random_range(0..OPERATORS.len()) as u8,
        rat: rng.random_range(0..RATS.len()) as u8,
        data,
        sms,
        auto_topup: false,
        api_top_ups: 0,
        extra: None,
    }
}

/// How busy a SIM is, fixed by the seed: data sessions and MO SMS per simulated day.
pub struct Profile {
    pub sessions_per_day: f64,
    pub session_bytes_max: u64,
    pub mo_sms_per_day: f64,
}

pub fn profile(seed: u64, iccid: u64) -> Profile {
    let h = mix(seed ^ iccid);
    const SESSIONS: [f64; 8] = [0.0, 0.0, 0.5, 1.0, 2.0, 6.0, 12.0, 24.0];
    Profile {
        sessions_per_day: SESSIONS[(h % 8) as usize],
        // 2 KB .. 2 MB per session.
        session_bytes_max: 2_000 + (h >> 8) % (2 * BYTES_PER_MB),
        mo_sms_per_day: if (h >> 40).is_multiple_of(4) { 0.5 } else { 0.02 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sim_and_iccids_grow_with_serial() {
        let shape = FleetShape {
            seed: 7,
            data_total_bytes: 500 * BYTES_PER_MB,
            sms_total: 250,
        };
        let now = Utc::now();
        let a = generate_sim(&shape, 3, now);
        let b = generate_sim(&shape, 3, now);
        assert_eq!(
            (a.iccid, &a.label, a.data.remaining),
            (b.iccid, &b.label, b.data.remaining)
        );
        let ids: Vec<u64> = (0..1000).map(|s| iccid_for(7, s)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| id.to_string().len() == 19));
        assert_ne!(iccid_for(7, 0), iccid_for(8, 0));
    }
}
