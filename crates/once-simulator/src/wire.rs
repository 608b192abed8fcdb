//! The provider's JSON shapes, written from the OpenAPI documents (field names exactly as
//! there), independent of the client's types.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::fleet::quota::{status_description, Quota, QuotaKind, THRESHOLD_PERCENT};
use crate::fleet::quota_of;
use crate::fleet::records::{DayUsage, EventRecord, SimRecord, SmsDirection, SmsRecord, OPERATORS, RATS};
use crate::format::{iccid_with_luhn, mb_number, mb_string, mix, ts_offset, ts_z};

pub fn sim(s: &SimRecord) -> Value {
    json!({
        "iccid": s.iccid.to_string(),
        "iccid_with_luhn": iccid_with_luhn(s.iccid),
        "imsi": s.imsi.to_string(),
        "imsi_2": s.imsi_2.to_string(),
        "current_imsi": s.current_imsi().to_string(),
        "msisdn": s.msisdn.to_string(),
        "imei": s.imei,
        "imei_lock": s.imei_lock,
        "status": if s.enabled { "Enabled" } else { "Disabled" },
        "activation_date": ts_offset(s.activation),
        "ip_address": s.ip_address,
        "current_quota": mb_number(s.data.total),
        "quota_status": quota_status(&s.data),
        "current_quota_SMS": s.sms.total,
        "quota_status_SMS": quota_status(&s.sms),
        "label": s.label,
    })
}

fn quota_status(q: &Quota) -> Value {
    let id = q.status_id();
    json!({
        "id": id,
        "description": status_description(id),
        "threshold_reached_date": q.threshold_reached.map(ts_offset),
        "quota_exceeded_date": q.exceeded.map(ts_offset),
    })
}

pub fn quota(s: &SimRecord, kind: QuotaKind) -> Value {
    let q = quota_of(s, kind);
    let (volume, total, added) = match kind {
        QuotaKind::Data => (
            mb_number(q.remaining),
            mb_number(q.total),
            mb_number(q.last_volume_added),
        ),
        QuotaKind::Sms => (q.remaining.into(), q.total.into(), q.last_volume_added.into()),
    };
    let mut body = json!({
        "volume": volume,
        "total_volume": total,
        "expiry_date": ts_z(q.expiry),
        "last_volume_added": added,
        "last_status_change_date": ts_z(q.last_status_change),
        "threshold_percentage": THRESHOLD_PERCENT,
    });
    if kind == QuotaKind::Data {
        body["peak_throughput"] = json!(1_000_000);
    }
    body
}

pub fn usage(days: &[(NaiveDate, DayUsage)]) -> Value {
    let currency = json!({"id": 1, "symbol": "€", "code": "EUR"});
    let stats: Vec<Value> = days
        .iter()
        .map(|(date, u)| {
            let data_total = u.rx_bytes + u.tx_bytes;
            let sms_total = u.sms_mo + u.sms_mt;
            json!({
                "date": format!("{}T00:00:00.000Z", date.format("%Y-%m-%d")),
                "data": {
                    "volume": mb_string(data_total),
                    "volume_rx": mb_string(u.rx_bytes),
                    "volume_tx": mb_string(u.tx_bytes),
                    // "The cost shown here match 1:1 the used" volume.
                    "cost": mb_string(data_total),
                    "currency": currency,
                    "traffic_type": {"description": "Data", "id": 5, "unit": "MB"},
                },
                "sms": {
                    "volume": sms_total.to_string(),
                    "volume_rx": u.sms_mo.to_string(),
                    "volume_tx": u.sms_mt.to_string(),
                    "cost": sms_total.to_string(),
                    "currency": currency,
                    "traffic_type": {"description": "SMS", "id": 6, "unit": "SMS"},
                },
            })
        })
        .collect();
    json!({ "stats": stats })
}

pub fn sms(s: &SimRecord, m: &SmsRecord) -> Value {
    let (status_id, status) = m.state.wire();
    let (type_id, type_name) = match m.direction {
        SmsDirection::Mt => (1, "MT"),
        SmsDirection::Mo => (2, "MO"),
    };
    json!({
        "id": m.id,
        "submit_date": ts_z(m.submitted),
        "delivery_date": m.delivered.map(ts_z),
        "expiry_date": ts_z(m.expiry),
        "final_date": m.final_date.map(ts_z),
        "retry_date": Value::Null,
        "last_delivery_attempt": m.delivered.map(ts_z),
        "retry_count": "0",
        "source_address": m.source_address,
        "iccid": s.iccid.to_string(),
        "msisdn": s.msisdn.to_string(),
        "imsi": s.current_imsi().to_string(),
        "msc": "491600190000",
        "dcs": m.dcs,
        "udh": m.udh.clone().unwrap_or_default(),
        "payload": m.payload,
        "status": {"id": status_id, "description": status},
        "sms_type": {"id": type_id, "description": type_name},
        "source_address_type": {"id": m.source_address_type},
    })
}

pub fn events(s: &SimRecord, events: &[EventRecord], total: usize, total_pages: u64) -> Value {
    let op = &OPERATORS[usize::from(s.operator) % OPERATORS.len()];
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "timestamp": ts_offset(e.at),
                "event_type": e.event_type,
                "iccid": s.iccid.to_string(),
                "imei": s.imei,
                "imsi": s.current_imsi().to_string(),
                "country": op.country,
                "operator": op.name,
                "mcc": op.mcc,
                "mnc": op.mnc,
                "alert": e.alert,
                "event_severity": e.severity,
            })
        })
        .collect();
    json!({"events": list, "totalEvents": total, "totalPages": total_pages})
}

/// `ONLINE` with a PDP context when enabled with data left, `ATTACHED` when enabled without
/// (or for a share of SIMs that are only registered), `OFFLINE` when disabled.
pub fn connectivity(s: &SimRecord, now: DateTime<Utc>) -> Value {
    let op = &OPERATORS[usize::from(s.operator) % OPERATORS.len()];
    let over = s
        .extra
        .as_ref()
        .and_then(|e| e.connectivity.clone())
        .unwrap_or_default();
    let operator_name = over.operator.clone().unwrap_or_else(|| op.name.to_owned());
    let country_name = over.country.clone().unwrap_or_else(|| op.country.to_owned());
    let (rat_id, rat_name) = RATS[usize::from(s.rat) % RATS.len()];
    let rat_name = over.rat.clone().unwrap_or_else(|| rat_name.to_owned());
    let h = mix(s.iccid);
    let resetting = s
        .extra
        .as_ref()
        .and_then(|e| e.reattach_at)
        .is_some_and(|at| now < at);
    let status = if !s.enabled {
        "OFFLINE"
    } else if resetting || s.data.remaining == 0 || s.data.expired || h.is_multiple_of(5) {
        "ATTACHED"
    } else {
        "ONLINE"
    };
    let last_updated = now - chrono::Duration::minutes((h % 600) as i64);
    let imsi = s.current_imsi().to_string();
    let mut body = json!({
        "status": status,
        "location": {
            "iccid": s.iccid.to_string(),
            "imsi": imsi,
            "last_updated": ts_z(last_updated),
            "last_updated_gprs": ts_z(last_updated),
            "sgsn_number": "491600300000",
            "vlr_number": "491710000000",
            "msc": "491710300000",
            "operator_id": op.id,
            "sgsn_ip_address": "192.0.2.10",
            "operator": {
                "id": op.id,
                "name": operator_name,
                "country": {"id": op.country_id, "name": country_name, "iso-code": op.iso},
            },
            "country": {
                "country_id": op.country_id,
                "name": country_name,
                "country_code": op.country_code,
                "mcc": op.mcc,
                "iso-code": op.iso,
                "latitude": op.latitude,
                "longitude": op.longitude,
            },
        },
        "services": if s.enabled { json!(["GPRS", "SMS"]) } else { json!([]) },
    });
    if status == "ONLINE" {
        let created = now - chrono::Duration::seconds((h % 20_000) as i64);
        let duration = (now - created).num_seconds();
        body["pdp_context"] = json!({
            "pdp_context_id": (1_898_708_000 + h % 100_000).to_string(),
            "endpoint_id": (10_458_000 + s.imsi % 100_000).to_string(),
            "tariff_profile_id": "129700",
            "tariff_id": "442",
            "ratezone_id": "2171",
            "imsi": imsi,
            "created": ts_z(created),
            "mcc": op.mcc,
            "mnc": op.mnc,
            "operator_id": op.id,
            "lac": (h % 65_000).to_string(),
            "ci": ((h >> 16) % 65_000).to_string(),
            "ue_ip_address": s.ip_address,
            "imeisv": s.imei.as_ref().map(|i| format!("{}00", &i[..i.len().min(14)])),
            "duration": format!("{:02}:{:02}:{:02}", duration / 3600, duration / 60 % 60, duration % 60),
            "rat_type": {"rat_type_id": rat_id, "description": rat_name},
        });
    }
    body
}

pub fn connectivity_info(s: &SimRecord, now: DateTime<Utc>, subscriber: bool, ussd: bool) -> Value {
    let op = &OPERATORS[usize::from(s.operator) % OPERATORS.len()];
    let h = mix(s.iccid ^ 0x5eed);
    let mut body = json!({
        "request_timestamp": ts_offset(now),
        "reply_timestamp": ts_offset(now + chrono::Duration::milliseconds(142)),
    });
    if subscriber {
        body["subscriber_info"] = if s.enabled {
            json!({
                "success": true,
                "state": "assumedIdle",
                "location": {
                    "current_location_retrieved": false,
                    "age_of_location": h % 60,
                    "cell_global_id": {"cid": h % 65_000, "lac": (h >> 16) % 65_000, "mcc": op.mcc, "mnc": op.mnc},
                },
            })
        } else {
            json!({"success": false, "state": "not_provided_from_vlr"})
        };
    }
    if ussd {
        body["ussd_info"] = json!({"success": false, "error": "Request Timeout Error"});
    }
    body
}
