//! From the client's models of provider answers to what the connector keeps and compares.

use chrono::{DateTime, NaiveDate, Utc};
use once_client::{ConnectivityStatus, DailyUsage, Quota, Sim, Sms, SmsType};
use serde::{Deserialize, Serialize};

use crate::observe::{ConnectivityView, ListEntry, SeenQuota, UsageDay};

pub fn list_entry(sim: &Sim) -> ListEntry {
    ListEntry {
        imsi: sim.imsi.clone(),
        msisdn: sim.msisdn.clone(),
        status: sim.status.as_ref().map(|s| s.as_str().to_owned()),
        imei: sim.imei.clone(),
        imei_lock: sim.imei_lock,
        ip_address: sim.ip_address.clone(),
        label: sim.label.clone(),
        data_left: sim.current_quota_bytes,
        data_status: sim.quota_status.as_ref().and_then(|s| s.id),
        sms_left: sim.current_quota_sms,
        sms_status: sim.quota_status_sms.as_ref().and_then(|s| s.id),
    }
}

/// Where the SIM is and how it is connected; the IP from the list when there is no session.
pub fn connectivity(status: &ConnectivityStatus, list_ip: Option<&str>) -> ConnectivityView {
    let location = status.location.as_ref();
    let session = status.pdp_context.as_ref();
    ConnectivityView {
        network: location
            .and_then(|l| l.operator.as_ref())
            .and_then(|o| o.name.clone()),
        country: location
            .and_then(|l| l.country.as_ref())
            .and_then(|c| c.name.clone().or_else(|| c.iso_code.clone())),
        rat: session
            .and_then(|s| s.rat_type.as_ref())
            .and_then(|r| r.description.clone()),
        ip_address: session
            .and_then(|s| s.ue_ip_address.clone())
            .or_else(|| list_ip.map(str::to_owned)),
    }
}

pub fn quota(quota: &Quota) -> SeenQuota {
    SeenQuota {
        total: quota.total,
        remaining: quota.remaining,
        expiry_date: quota.expiry_date,
        expiry_reported: false,
    }
}

/// A quota as seen just before (and after) a top-up call: enough to recognise its effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaRecord {
    pub total: u64,
    pub remaining: u64,
    pub last_volume_added: Option<u64>,
    pub last_change: Option<DateTime<Utc>>,
}

pub fn quota_record(quota: &Quota) -> QuotaRecord {
    QuotaRecord {
        total: quota.total,
        remaining: quota.remaining,
        last_volume_added: quota.last_volume_added,
        last_change: quota.last_status_change_date,
    }
}

pub fn usage_days(usage: &[DailyUsage]) -> Vec<(NaiveDate, UsageDay)> {
    usage
        .iter()
        .map(|day| {
            (
                day.date,
                UsageDay {
                    data_bytes: day.data.volume_bytes,
                    sms_mo: day.sms.volume_rx,
                    sms_mt: day.sms.volume_tx,
                    closed: false,
                },
            )
        })
        .collect()
}

/// A message a device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoSms {
    pub provider_id: i64,
    pub payload: String,
    pub source_address: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
}

pub fn mo_messages(messages: &[Sms]) -> Vec<MoSms> {
    let mut received: Vec<MoSms> = messages
        .iter()
        .filter(|m| m.sms_type == SmsType::Mo)
        .filter_map(|m| {
            Some(MoSms {
                provider_id: i64::try_from(m.id).ok()?,
                payload: m.payload.clone().unwrap_or_default(),
                source_address: m.source_address.clone(),
                received_at: m.submit_date.or(m.delivery_date),
            })
        })
        .collect();
    received.sort_by_key(|m| m.provider_id);
    received
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtOutcome {
    Pending,
    Delivered,
    Failed(String),
}

/// A message sent to a device, with how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtSms {
    pub provider_id: i64,
    pub payload: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub outcome: MtOutcome,
    pub final_at: Option<DateTime<Utc>>,
}

pub fn mt_messages(messages: &[Sms]) -> Vec<MtSms> {
    messages
        .iter()
        .filter(|m| m.sms_type == SmsType::Mt)
        .filter_map(|m| {
            let status = m
                .status
                .as_ref()
                .and_then(|s| s.description.clone())
                .unwrap_or_default()
                .to_ascii_uppercase();
            let outcome = match status.as_str() {
                "DELIVERED" => MtOutcome::Delivered,
                "FAILED" | "EXPIRED" | "REJECTED" | "CANCELED" | "CANCELLED" | "DELETED"
                | "UNDELIVERABLE" => MtOutcome::Failed(format!("the provider reports the message {status}")),
                _ => MtOutcome::Pending,
            };
            Some(MtSms {
                provider_id: i64::try_from(m.id).ok()?,
                payload: m.payload.clone().unwrap_or_default(),
                submitted_at: m.submit_date,
                final_at: m.final_date.or(m.delivery_date),
                outcome,
            })
        })
        .collect()
}
