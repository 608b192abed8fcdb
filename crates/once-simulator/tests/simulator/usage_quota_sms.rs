//! Usage, quotas, top-ups and SMS.

use std::collections::BTreeSet;
use std::str::FromStr;

use crate::common::{header, quiet, start_connected, start_quiet_with_iccid};
use chrono::Duration;
use once_simulator::{QuotaKind, Simulator};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// The ICCID of the fleet's SIM at `index`, its data and SMS quotas set so that `used_percent`
/// of each is used.
fn sim_with_quotas_used_to(sim: &Simulator, index: usize, used_percent: f64) -> String {
    let iccid = sim.iccids()[index].clone();
    sim.consume_quota_to(&iccid, QuotaKind::Data, used_percent);
    sim.consume_quota_to(&iccid, QuotaKind::Sms, used_percent);
    iccid
}

#[tokio::test]
async fn usage_has_one_entry_per_day_with_exact_decimal_megabytes() {
    let (running, api) = start_connected(quiet(5)).await;
    let sim = &running.simulator;
    let iccid = sim_with_quotas_used_to(sim, 1, 0.0);
    let today = sim.now().date_naive();
    let yesterday = today - Duration::days(1);
    sim.add_usage(&iccid, yesterday, 2803, 2, 1);
    sim.add_usage(&iccid, today, 1_234_567, 0, 0);

    let start = today - Duration::days(2);
    let body = api
        .get_json(&format!("/v1/sims/{iccid}/usage?start_dt={start}&end_dt={today}"))
        .await;
    let stats = body["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 3, "one entry per day, zero days included");
    assert_eq!(stats[0]["data"]["volume"], "0.000000");
    assert!(stats[0]["date"].as_str().unwrap().starts_with(&start.to_string()));
    let day = &stats[1];
    assert_eq!(day["data"]["volume"], "0.002803");
    let rx = Decimal::from_str(day["data"]["volume_rx"].as_str().unwrap()).unwrap();
    let tx = Decimal::from_str(day["data"]["volume_tx"].as_str().unwrap()).unwrap();
    assert_eq!(rx + tx, Decimal::from_str("0.002803").unwrap());
    assert_eq!(day["data"]["traffic_type"]["unit"], "MB");
    assert_eq!(day["data"]["currency"]["code"], "EUR");
    assert_eq!(day["sms"]["volume"], "3");
    assert_eq!(day["sms"]["volume_rx"], "2", "MO is received by the network");
    assert_eq!(day["sms"]["volume_tx"], "1");
    assert_eq!(stats[2]["data"]["volume"], "1.234567");

    // The quotas went down by exactly that.
    let quota = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    let left = Decimal::from_str(&quota["volume"].to_string()).unwrap();
    assert_eq!(left, Decimal::from(500) - Decimal::from_str("1.237370").unwrap());
    let sms_quota = api.get_json(&format!("/v1/sims/{iccid}/quota/sms")).await;
    assert_eq!(sms_quota["volume"], 247);
}

#[tokio::test]
async fn bad_usage_dates_are_refused() {
    let (running, api, iccid) = start_quiet_with_iccid(2, 0).await;
    let today = running.simulator.now().date_naive();
    let long_ago = today - Duration::days(200);
    for query in [
        String::new(),
        format!("start_dt={today}"),
        format!("start_dt=2024-13-01&end_dt={today}"),
        format!("start_dt={today}&end_dt=yesterday"),
        format!("start_dt={today}&end_dt={}", today - Duration::days(1)),
        format!("start_dt={long_ago}&end_dt={today}"),
    ] {
        let response = api.get(&format!("/v1/sims/{iccid}/usage?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.json::<Value>().await.unwrap()["message"].is_string());
    }
    let future_end = today + Duration::days(5);
    let body = api
        .get_json(&format!(
            "/v1/sims/{iccid}/usage?start_dt={today}&end_dt={future_end}"
        ))
        .await;
    assert_eq!(
        body["stats"].as_array().unwrap().len(),
        1,
        "the answer stops at today"
    );
}

#[tokio::test]
async fn quota_answers_have_the_documented_fields_and_levels() {
    let (running, api, iccid) = start_quiet_with_iccid(3, 0).await;
    let sim = &running.simulator;
    let data = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    let fields: BTreeSet<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "volume",
            "total_volume",
            "expiry_date",
            "peak_throughput",
            "last_volume_added",
            "last_status_change_date",
            "threshold_percentage",
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(data["total_volume"], 500);
    assert_eq!(data["threshold_percentage"], 20);
    assert!(data["expiry_date"].as_str().unwrap().ends_with('Z'));

    sim.consume_quota_to(&iccid, QuotaKind::Data, 85.0);
    let one = api.get_json(&format!("/v1/sims/{iccid}")).await;
    assert_eq!(one["quota_status"]["id"], 1);
    assert!(one["quota_status"]["threshold_reached_date"].is_string());
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await["volume"],
        75
    );

    sim.consume_quota_to(&iccid, QuotaKind::Sms, 100.0);
    let two = api.get_json(&format!("/v1/sims/{iccid}")).await;
    assert_eq!(two["quota_status_SMS"]["id"], 2);
    assert!(two["quota_status_SMS"]["quota_exceeded_date"].is_string());
    let sms = api.get_json(&format!("/v1/sims/{iccid}/quota/sms")).await;
    assert_eq!(
        (sms["volume"].as_u64(), sms["total_volume"].as_u64()),
        (Some(0), Some(250))
    );
    assert!(sms.get("peak_throughput").is_none());
}

#[tokio::test]
async fn a_top_up_adds_the_product_and_is_counted() {
    let (running, api) = start_connected(quiet(4)).await;
    let sim = &running.simulator;
    let iccid = sim_with_quotas_used_to(sim, 2, 100.0);
    let before = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    sim.advance(std::time::Duration::from_secs(60));

    // An unknown payment method falls back to banktransfer, as the documents describe.
    let response = api
        .send(
            Method::POST,
            &format!("/v1/sims/{iccid}/topup?payment_method=bitcoin"),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = header(&response, "Location");
    assert!(
        location.starts_with(&running.base_url()) && location.contains("/v1/orders/"),
        "{location}"
    );
    assert_eq!(sim.top_ups(&iccid), 1);

    let data = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    assert_eq!(data["volume"], 500);
    assert_eq!(data["total_volume"], 1000);
    assert_eq!(data["last_volume_added"], 500);
    assert_ne!(data["last_status_change_date"], before["last_status_change_date"]);
    let sms = api.get_json(&format!("/v1/sims/{iccid}/quota/sms")).await;
    assert_eq!(
        (sms["volume"].as_u64(), sms["last_volume_added"].as_u64()),
        (Some(250), Some(250))
    );
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}")).await["quota_status"]["id"],
        0
    );

    let many = api
        .send_json(Method::POST, "/v1/sims/topup", &json!([iccid, sim.iccids()[3]]))
        .await;
    assert_eq!(many.status(), 201);
    assert_eq!(sim.top_ups(&iccid), 2);
    assert_eq!(sim.top_ups(&sim.iccids()[3]), 1);

    let unknown = api.send(Method::POST, "/v1/sims/8988280666999999999/topup").await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn an_expired_quota_refuses_top_ups_with_422() {
    let (running, api, iccid) = start_quiet_with_iccid(2, 0).await;
    let sim = &running.simulator;
    sim.expire_quota(&iccid, QuotaKind::Data);
    let data = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    assert_eq!(data["volume"], 0);
    let response = api.send(Method::POST, &format!("/v1/sims/{iccid}/topup")).await;
    assert_eq!(response.status(), 422);
    assert_eq!(sim.top_ups(&iccid), 0);
}

#[tokio::test]
async fn mt_sms_is_listed_as_mt_and_mo_sms_as_mo() {
    let (running, api, iccid) = start_quiet_with_iccid(3, 0).await;
    let sim = &running.simulator;
    let response = api
        .send_sms(
            &iccid,
            &json!({"source_address": "1234567890", "payload": "reboot", "source_address_type": {"id": 145}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = header(&response, "Location");
    let mo_id = sim.receive_mo_sms(&iccid, "hello from the device");
    let mt = sim.mt_sms(&iccid);
    assert_eq!(mt.len(), 1);
    assert_eq!(mt[0].1, "reboot");
    assert!(location.ends_with(&format!("/sms/{}", mt[0].0)), "{location}");

    let response = api.get(&format!("/v1/sims/{iccid}/sms?page=1&pageSize=10")).await;
    assert_eq!(header(&response, "X-Total-Count"), "2");
    let list: Vec<Value> = response.json().await.unwrap();
    assert_eq!(list[0]["sms_type"]["description"], "MT");
    assert_eq!(list[0]["payload"], "reboot");
    assert_eq!(
        list[0]["status"]["description"], "DELIVERED",
        "autonomous off: delivered at once"
    );
    assert_eq!(list[0]["status"]["id"], 4);
    assert_eq!(list[1]["sms_type"]["description"], "MO");
    assert_eq!(list[1]["id"], mo_id);
    for field in [
        "id",
        "submit_date",
        "delivery_date",
        "expiry_date",
        "final_date",
        "retry_date",
        "last_delivery_attempt",
        "retry_count",
        "source_address",
        "iccid",
        "msisdn",
        "imsi",
        "msc",
        "dcs",
        "udh",
        "payload",
        "status",
        "sms_type",
        "source_address_type",
    ] {
        assert!(list[0].get(field).is_some(), "{field}");
    }
    let one = api.get_json(&format!("/v1/sims/{iccid}/sms/{mo_id}")).await;
    assert_eq!(one["payload"], "hello from the device");
    assert_eq!(
        api.get(&format!("/v1/sims/{iccid}/sms/999999")).await.status(),
        404
    );

    let delivered = api
        .send(Method::DELETE, &format!("/v1/sims/{iccid}/sms/{}", mt[0].0))
        .await;
    assert_eq!(delivered.status(), 422, "a delivered SMS cannot be cancelled");

    let bad = api.send_sms(&iccid, &json!({"source_address": "1"})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(sim.mt_sms(&iccid).len(), 1);
}

#[tokio::test]
async fn with_the_clock_mt_sms_waits_buffered_and_can_be_cancelled() {
    let (running, api) = start_connected(once_simulator::SimulatorConfig {
        sims: 3,
        autonomous: true,
        clock_speed: 0.0, // the clock moves only when the test says so
        sims_rate_limit_per_sec: 0,
        ..Default::default()
    })
    .await;
    let iccid = running.simulator.iccids()[0].clone();
    let mut ids = Vec::new();
    for payload in ["one", "two"] {
        let response = api.send_sms(&iccid, &json!({"payload": payload})).await;
        assert_eq!(response.status(), 201);
        ids.push(
            header(&response, "Location")
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned(),
        );
    }
    let first = api.get_json(&format!("/v1/sims/{iccid}/sms/{}", ids[0])).await;
    assert_eq!(first["status"]["description"], "BUFFERED");
    assert!(first["delivery_date"].is_null());
    let cancel = api
        .send(Method::DELETE, &format!("/v1/sims/{iccid}/sms/{}", ids[1]))
        .await;
    assert_eq!(cancel.status(), 204);
    running.simulator.advance(std::time::Duration::from_secs(30));
    let first = api.get_json(&format!("/v1/sims/{iccid}/sms/{}", ids[0])).await;
    assert_eq!(first["status"]["description"], "DELIVERED");
    assert!(first["delivery_date"].is_string());
    let second = api.get_json(&format!("/v1/sims/{iccid}/sms/{}", ids[1])).await;
    assert_eq!(second["status"]["description"], "CANCELED");
}
