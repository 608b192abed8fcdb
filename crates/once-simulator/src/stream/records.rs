//! The Data Streamer's JSON records (`/work/shared/1nce-data-streamer.md` §2, §3): usage
//! records and event records, rendered from the journal's entries and the SIM as it is now.
//!
//! Our choices where 1NCE's examples leave it open: usage timestamps as `…:05Z` (v1), event
//! timestamps as `….000Z` (v2); volumes are JSON numbers of MB, exact to the byte, except
//! where a number would need exponent notation (below 0.00001 MB), which is sent as a decimal
//! string instead (1NCE sends both forms); ids of SIM, IMSI and endpoint derive from the SIM's
//! serial, so they stay within 32 bits.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::fleet::journal::{EventEntry, EventKind, Traffic, UsageEntry};
use crate::fleet::quota::{QuotaKind, THRESHOLD_PERCENT};
use crate::fleet::records::{Operator, SimRecord, OPERATORS, RATS};
use crate::format::{mb_number, mb_string, mix, ts_z};

const ORGANISATION: (u64, &str) = (4_711, "81004711");

pub fn usage(sim: &SimRecord, e: &UsageEntry) -> Value {
    let (traffic, volume) = match e.traffic {
        Traffic::Data { rx, tx } => (
            json!({"id": 5, "description": "Data"}),
            [mb(rx + tx), mb(tx), mb(rx)],
        ),
        // One record per message: MO counts in tx, MT in rx (1NCE's SMS usage example).
        Traffic::SmsMo => (
            json!({"id": 6, "description": "SMS"}),
            [json!(1.0), json!(1.0), json!(0.0)],
        ),
        Traffic::SmsMt => (
            json!({"id": 6, "description": "SMS"}),
            [json!(1.0), json!(0.0), json!(1.0)],
        ),
    };
    let [total, tx, rx] = volume;
    let op = operator(sim);
    json!({
        "id": e.id,
        "traffic_type": traffic,
        "start_timestamp": ts_seconds(e.start),
        "end_timestamp": ts_seconds(e.end),
        "volume": {"total": total, "tx": tx, "rx": rx},
        // Not a price: 1NCE copies the volume.
        "cost": total,
        "currency": {"id": 1, "symbol": "€", "code": "EUR"},
        "imsi": sim.current_imsi().to_string(),
        "imsi_id": imsi_id(sim),
        "sim": sim_object(sim),
        "endpoint": {
            "id": endpoint_id(sim),
            "name": endpoint_name(sim),
            "ip_address": sim.ip_address,
            "imei": sim.imei,
            "tags": null,
            "balance": null,
        },
        "operator": {
            "id": int(op.id),
            "name": op.name,
            "mnc": op.mnc,
            "country": {"id": int(op.country_id), "mcc": op.mcc, "name": op.country},
        },
        "tariff": {"id": 398, "name": "1NCE Production 01", "ratezone": {"id": 2067, "name": "Rate Zone 2 (EU - DE)"}},
        "organisation": organisation(),
    })
}

pub fn event(sim: &SimRecord, e: &EventEntry) -> Value {
    let (type_id, type_name, source) = event_type(&e.kind);
    let (severity_id, severity) = if e.warning { (1, "WARN") } else { (0, "INFO") };
    let source_name = ["Network", "Policy Control", "API"][source];
    json!({
        "id": e.id,
        "timestamp": ts_z(e.at),
        "event_type": {"id": type_id, "description": type_name},
        "event_severity": {"id": severity_id, "description": severity},
        "event_source": {"id": source, "description": source_name},
        "organisation": organisation(),
        "alert": e.alert,
        "description": e.text,
        "user": null,
        "imsi": {"id": imsi_id(sim), "imsi": sim.current_imsi().to_string(), "import_date": ts_z(production_date(sim))},
        "sim": sim_object(sim),
        "endpoint": {
            "id": endpoint_id(sim),
            "name": endpoint_name(sim),
            "ip_address": sim.ip_address,
            "tags": null,
            "imei": sim.imei,
        },
        "detail": detail(sim, e),
    })
}

/// `(id, description, source)`: 0 Network, 1 Policy Control, 2 API.
fn event_type(kind: &EventKind) -> (u8, &'static str, usize) {
    let quota = |kind: &QuotaKind, data, sms| if *kind == QuotaKind::Data { data } else { sms };
    match kind {
        EventKind::Generic => (0, "Generic", 2),
        EventKind::UpdateLocation => (1, "Update location", 0),
        EventKind::CreatePdp { .. } => (3, "Create PDP Context", 0),
        EventKind::UpdatePdp { .. } => (4, "Update PDP Context", 0),
        EventKind::DeletePdp { .. } => (5, "Delete PDP Context", 0),
        EventKind::Activated => (8, "SIM activation", 2),
        EventKind::Suspended => (9, "SIM suspension", 2),
        EventKind::ThresholdReached { kind, .. } => {
            let (id, name) = quota(
                kind,
                (18, "Data Quota Threshold reached"),
                (20, "SMS Quota Threshold reached"),
            );
            (id, name, 1)
        }
        EventKind::UsedUp { kind, .. } => {
            let (id, name) = quota(kind, (19, "Data Quota used up"), (21, "SMS Quota used up"));
            (id, name, 1)
        }
        EventKind::Assigned { kind, .. } => {
            let (id, name) = quota(kind, (56, "Data Quota Assigned"), (58, "SMS Quota Assigned"));
            (id, name, 2)
        }
        EventKind::Expired { .. } => (60, "Data Quota expired", 1),
    }
}

fn detail(sim: &SimRecord, e: &EventEntry) -> Value {
    let op = operator(sim);
    let (rat_id, _) = RATS[usize::from(sim.rat) % RATS.len()];
    let country = json!({
        "id": int(op.country_id),
        "name": country_name(sim),
        "country_code": op.country_code,
        "mcc": op.mcc,
        "iso_code": op.iso,
    });
    let network = |pdp: Option<Value>| {
        let mut detail = json!({"id": int(op.id), "name": operator_name(sim), "country": country});
        match pdp {
            Some(pdp) => detail["pdp_context"] = pdp,
            None => {
                // Location updates list the network's MNCs and TAP codes as arrays.
                detail["mnc"] = json!([{"id": 1, "mnc": op.mnc}]);
                detail["tapcode"] =
                    json!([{"id": 1, "tapcode": format!("{}{}", op.iso.to_uppercase(), op.mnc)}]);
            }
        }
        detail
    };
    match &e.kind {
        EventKind::Generic | EventKind::Activated | EventKind::Suspended => Value::Null,
        EventKind::UpdateLocation => network(None),
        EventKind::CreatePdp { context } | EventKind::UpdatePdp { context } => {
            let mut pdp = pdp_context(sim, op, *context, e.at, int(rat_id));
            if matches!(e.kind, EventKind::CreatePdp { .. }) {
                pdp["ratezone_id"] = json!("2171");
                pdp["tariff_id"] = json!("442");
                pdp["tariff_profile_id"] = json!("129700");
                pdp["operator_id"] = json!(op.id);
            }
            network(Some(pdp))
        }
        EventKind::DeletePdp { context, volume } => {
            let mut pdp = pdp_context(sim, op, *context, e.at, int(rat_id));
            pdp["apn"] = Value::Null;
            let mut detail = network(Some(pdp));
            if let Some((rx, tx)) = volume {
                detail["volume"] = json!({"rx": mb(*rx), "tx": mb(*tx), "total": mb(rx + tx)});
            }
            detail
        }
        EventKind::ThresholdReached {
            kind,
            remaining,
            total,
        } => json!({"quota": {
            "volume": amount(*kind, *remaining),
            "threshold_volume": amount(*kind, total * THRESHOLD_PERCENT / 100),
            "threshold_percentage": THRESHOLD_PERCENT,
            "traffic_type": traffic_name(*kind),
        }}),
        // As in 1NCE's example of event 19, the volume left is a string here.
        EventKind::UsedUp { kind, total } => json!({"quota": {
            "volume": amount_text(*kind, 0),
            "threshold_volume": amount(*kind, total * THRESHOLD_PERCENT / 100),
            "threshold_percentage": THRESHOLD_PERCENT,
            "traffic_type": traffic_name(*kind),
        }}),
        // 1NCE sends these details as a JSON-encoded string whose dates are not quoted (so
        // the string is not valid JSON); the simulator does the same.
        EventKind::Assigned {
            kind,
            added,
            total,
            expiry,
        } => Value::String(format!(
            "{{\"quota\":{{\"volume\":{},\"total_volume\":{},\"expiry_date\":{},\"traffic_type\":\"{}\"}}}}",
            amount_text(*kind, *added),
            amount_text(*kind, *total),
            ts_z(*expiry),
            traffic_name(*kind),
        )),
        EventKind::Expired { kind, total } => json!({"quota": {
            "volume": amount(*kind, 0),
            "threshold_volume": amount(*kind, total * THRESHOLD_PERCENT / 100),
            "threshold_percentage": THRESHOLD_PERCENT,
            "traffic_type": traffic_name(*kind),
        }}),
    }
}

fn pdp_context(sim: &SimRecord, op: &Operator, context: u64, at: DateTime<Utc>, rat: u64) -> Value {
    let h = mix(sim.iccid ^ context);
    json!({
        "pdp_context_id": context,
        "tunnel_created": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "gtp_version": 1,
        "ggsn_control_plane_ip_address": "185.3.235.2",
        "ggsn_data_plane_ip_address": "185.3.235.3",
        "sgsn_control_plane_ip_address": "192.0.2.10",
        "sgsn_data_plane_ip_address": "192.0.2.11",
        "region": "eu-central-1",
        "breakout_ip": "unavailable",
        "apn": "iot.1nce.net",
        "nsapi": 5,
        "ue_ip_address": sim.ip_address,
        "imeisv": sim.imei.as_ref().map(|i| format!("{}00", &i[..i.len().min(14)])),
        "imsi": sim.current_imsi().to_string(),
        "mcc": op.mcc,
        "mnc": op.mnc,
        "lac": h % 65_000,
        "sac": (h >> 16) % 65_000,
        "rac": null,
        "ci": (h >> 32) % 65_000,
        "tx_teid_control_plane": (h >> 8) % 4_000_000_000,
        "tx_teid_data_plane": (h >> 12) % 4_000_000_000,
        "rx_teid": (h >> 20) % 4_000_000_000,
        "rat_type": rat,
    })
}

/// Bytes as MB: a JSON number, or the decimal string where a number would need an exponent.
fn mb(bytes: u64) -> Value {
    let number = mb_number(bytes);
    if number.to_string().contains(['e', 'E']) {
        Value::String(mb_string(bytes))
    } else {
        number
    }
}

/// A quota amount: MB for data, messages for SMS.
fn amount(kind: QuotaKind, units: u64) -> Value {
    match kind {
        QuotaKind::Data => mb(units),
        QuotaKind::Sms => json!(units),
    }
}

fn amount_text(kind: QuotaKind, units: u64) -> String {
    match kind {
        QuotaKind::Data => mb_string(units),
        QuotaKind::Sms => units.to_string(),
    }
}

fn traffic_name(kind: QuotaKind) -> &'static str {
    match kind {
        QuotaKind::Data => "Data",
        QuotaKind::Sms => "SMS",
    }
}

fn operator(sim: &SimRecord) -> &'static Operator {
    &OPERATORS[usize::from(sim.operator) % OPERATORS.len()]
}

/// The operator's name as the network reports it now (a test's override wins).
fn operator_name(sim: &SimRecord) -> String {
    connectivity(sim, |c| c.operator.clone()).unwrap_or_else(|| operator(sim).name.to_owned())
}

fn country_name(sim: &SimRecord) -> String {
    connectivity(sim, |c| c.country.clone()).unwrap_or_else(|| operator(sim).country.to_owned())
}

fn connectivity(
    sim: &SimRecord,
    field: impl Fn(&crate::fleet::records::ConnectivityOverride) -> Option<String>,
) -> Option<String> {
    sim.extra.as_ref()?.connectivity.as_ref().and_then(field)
}

fn sim_object(sim: &SimRecord) -> Value {
    json!({
        "id": 1_000_000 + sim.serial(),
        "iccid": sim.iccid.to_string(),
        "msisdn": sim.msisdn.to_string(),
        "production_date": ts_z(production_date(sim)),
    })
}

fn production_date(sim: &SimRecord) -> DateTime<Utc> {
    sim.activation - chrono::Duration::days(30)
}

fn imsi_id(sim: &SimRecord) -> u64 {
    50_000_000 + sim.serial()
}

fn endpoint_id(sim: &SimRecord) -> u64 {
    10_000_000 + sim.serial()
}

/// 1NCE names an endpoint after its ICCID unless it has a label.
fn endpoint_name(sim: &SimRecord) -> String {
    sim.label.clone().unwrap_or_else(|| sim.iccid.to_string())
}

fn organisation() -> Value {
    json!({"id": ORGANISATION.0, "name": ORGANISATION.1})
}

fn int(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// `2021-08-09T12:59:05Z`, as in 1NCE's usage records.
fn ts_seconds(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_volumes_are_strings_others_numbers() {
        assert_eq!(mb(1_176), json!(0.001176));
        assert_eq!(mb(1), json!("0.000001"));
        assert_eq!(mb(5_000_000), json!(5));
        assert_eq!(mb(0), json!(0));
    }
}
