use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::wire;

/// The platform's own kind: 1NCE's paths use the same words (`/quota/data`, `/quota/sms`).
pub use domain::QuotaKind;

/// `GET /v1/sims/{iccid}/quota/{data|sms}`. Volumes are bytes for data and messages for SMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    pub kind: QuotaKind,
    pub remaining: u64,
    pub total: u64,
    pub expiry_date: Option<DateTime<Utc>>,
    pub last_volume_added: Option<u64>,
    pub last_status_change_date: Option<DateTime<Utc>>,
    pub threshold_percentage: Option<u8>,
    /// Throughput cap in bit/s (data quotas only).
    pub peak_throughput: Option<u64>,
}

/// The quota body as sent: the volumes' unit depends on which quota was asked for.
#[derive(Deserialize)]
pub(crate) struct QuotaAnswer {
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    volume: Option<Decimal>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    total_volume: Option<Decimal>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    expiry_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_whole")]
    peak_throughput: Option<u64>,
    #[serde(default, deserialize_with = "wire::opt_decimal")]
    last_volume_added: Option<Decimal>,
    #[serde(default, deserialize_with = "wire::opt_datetime")]
    last_status_change_date: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "wire::opt_small_whole")]
    threshold_percentage: Option<u8>,
}

impl QuotaAnswer {
    pub(crate) fn into_quota(self, kind: QuotaKind) -> Result<Quota, String> {
        let amount = |value: Decimal| match kind {
            QuotaKind::Data => wire::mb_to_bytes(value),
            QuotaKind::Sms if value.fract().is_zero() && !value.is_sign_negative() => {
                u64::try_from(value).map_err(|_| format!("SMS count {value} is out of range"))
            }
            QuotaKind::Sms => Err(format!("SMS count {value} is not a whole, non-negative number")),
        };
        let remaining = self.volume.ok_or("the quota has no volume")?;
        let total = self.total_volume.ok_or("the quota has no total_volume")?;
        Ok(Quota {
            kind,
            remaining: amount(remaining)?,
            total: amount(total)?,
            expiry_date: self.expiry_date,
            last_volume_added: self.last_volume_added.map(amount).transpose()?,
            last_status_change_date: self.last_status_change_date,
            threshold_percentage: self.threshold_percentage,
            peak_throughput: self.peak_throughput,
        })
    }
}
