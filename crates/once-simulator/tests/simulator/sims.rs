//! The SIM list, single SIMs, their updates, connectivity and events.

use std::collections::BTreeSet;

use crate::common::{header, quiet, start_connected, start_quiet_with_iccid};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn walking_all_pages_of_250_sims_sees_each_once_in_iccid_order() {
    let (running, api) = start_connected(quiet(250)).await;
    let mut seen = Vec::new();
    for page in 1..=3 {
        let response = api.get(&format!("/v1/sims?page={page}&pageSize=100")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "X-Total-Count"), "250");
        assert_eq!(header(&response, "X-Total-Pages"), "3");
        assert_eq!(header(&response, "X-Current-Page"), page.to_string());
        assert_eq!(header(&response, "X-Count-Per-Page"), "100");
        let sims: Vec<Value> = response.json().await.unwrap();
        assert_eq!(sims.len(), if page < 3 { 100 } else { 50 });
        seen.extend(sims.iter().map(|s| s["iccid"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        seen,
        running.simulator.iccids(),
        "stable ICCID order, nothing missed"
    );
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 250);

    let past = api.get("/v1/sims?page=4&pageSize=100").await;
    assert_eq!(past.status(), 200);
    assert_eq!(header(&past, "X-Current-Page"), "4");
    assert_eq!(past.json::<Vec<Value>>().await.unwrap().len(), 0);

    let default = api.get("/v1/sims").await;
    assert_eq!(header(&default, "X-Count-Per-Page"), "10");
    assert_eq!(header(&default, "X-Total-Pages"), "25");
    assert_eq!(default.json::<Vec<Value>>().await.unwrap().len(), 10);
}

#[tokio::test]
async fn page_size_bounds_and_bad_paging_are_refused() {
    let (_running, api) = start_connected(quiet(5)).await;
    for (query, status) in [
        ("pageSize=101", 422),
        ("pageSize=0", 422),
        ("page=0", 422),
        ("page=abc", 400),
        ("pageSize=1", 200),
        ("pageSize=100", 200),
    ] {
        let response = api.get(&format!("/v1/sims?{query}")).await;
        assert_eq!(response.status(), status, "{query}");
        if status != 200 {
            assert!(response.json::<Value>().await.unwrap()["message"].is_string());
        }
    }
}

#[tokio::test]
async fn a_sim_has_the_documented_fields_and_formats() {
    let (_running, api) = start_connected(quiet(20)).await;
    let sims: Vec<Value> = api.get_body("/v1/sims?pageSize=20").await;
    let mut disabled = 0;
    for sim in &sims {
        let fields: BTreeSet<&str> = sim.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = [
            "iccid",
            "iccid_with_luhn",
            "imsi",
            "imsi_2",
            "current_imsi",
            "msisdn",
            "imei",
            "imei_lock",
            "status",
            "activation_date",
            "ip_address",
            "current_quota",
            "quota_status",
            "current_quota_SMS",
            "quota_status_SMS",
            "label",
        ]
        .into_iter()
        .collect();
        assert_eq!(fields, expected);
        let iccid = sim["iccid"].as_str().unwrap();
        assert_eq!(iccid.len(), 19);
        let with_luhn = sim["iccid_with_luhn"].as_str().unwrap();
        assert_eq!(&with_luhn[..19], iccid);
        assert!(luhn_valid(with_luhn), "{with_luhn}");
        for imsi in ["imsi", "imsi_2", "current_imsi"] {
            let value = sim[imsi].as_str().unwrap();
            assert!(value.starts_with("901405") && value.len() == 15, "{imsi} {value}");
        }
        assert!(["Enabled", "Disabled"].contains(&sim["status"].as_str().unwrap()));
        disabled += usize::from(sim["status"] == "Disabled");
        let activation = sim["activation_date"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_str(activation, "%Y-%m-%dT%H:%M:%S%.3f%z").is_ok());
        assert!(activation.ends_with("+0000"), "{activation}");
        assert_eq!(sim["current_quota"], 500);
        assert_eq!(sim["current_quota_SMS"], 250);
        for status in ["quota_status", "quota_status_SMS"] {
            let id = sim[status]["id"].as_u64().unwrap();
            assert!(id <= 2);
            assert!(sim[status]["description"].is_string());
            assert_eq!(sim[status]["threshold_reached_date"].is_null(), id == 0);
            assert_eq!(sim[status]["quota_exceeded_date"].is_null(), id < 2);
        }
        // One SIM, fetched alone, is the same object.
        assert_eq!(&api.get_json(&format!("/v1/sims/{iccid}")).await, sim);
        // The 20-digit form with the right Luhn digit names the same SIM.
        assert_eq!(&api.get_json(&format!("/v1/sims/{with_luhn}")).await, sim);
    }
    assert!(disabled < sims.len());
}

/// The Luhn check, written apart from the simulator's (and the platform's) rule so that it
/// checks them: from the right, every second digit counts doubled, less 9 when that passes 9.
fn luhn_valid(digits: &str) -> bool {
    const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];
    let sum: u32 = digits
        .bytes()
        .map(|b| usize::from(b - b'0'))
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 1 { DOUBLED[d] } else { d as u32 })
        .sum();
    sum.is_multiple_of(10)
}

#[tokio::test]
async fn unknown_or_malformed_iccids_answer_404() {
    let (running, api) = start_connected(quiet(3)).await;
    let iccid = &running.simulator.iccids()[0];
    let with_luhn = once_simulator::iccid_with_luhn(iccid.parse().unwrap());
    let wrong_luhn = format!(
        "{}{}",
        &with_luhn[..19],
        (with_luhn.as_bytes()[19] - b'0' + 1) % 10
    );
    for path in [
        "/v1/sims/8988280666999999999".to_owned(),
        "/v1/sims/not-an-iccid".to_owned(),
        format!("/v1/sims/{wrong_luhn}"),
        "/v1/sims/8988280666999999999/quota/data".to_owned(),
        "/v1/sims/8988280666999999999/usage?start_dt=2020-01-01&end_dt=2020-01-02".to_owned(),
        "/v1/sims/8988280666999999999/sms".to_owned(),
    ] {
        let response = api.get(&path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.json::<Value>().await.unwrap()["message"].is_string());
    }
}

#[tokio::test]
async fn put_changes_status_label_and_imei_lock() {
    let (_running, api, iccid) = start_quiet_with_iccid(10, 4).await;
    let path = format!("/v1/sims/{iccid}");
    let before = api.get_json(&path).await;
    let target = if before["status"] == "Enabled" {
        "Disabled"
    } else {
        "Enabled"
    };
    let response = api
        .send_json(
            Method::PUT,
            &path,
            &json!({"iccid": iccid, "status": target, "label": "pump 7", "imei_lock": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let after = api.get_json(&path).await;
    assert_eq!(after["status"], target);
    assert_eq!(after["label"], "pump 7");
    assert_eq!(after["imei_lock"], true);

    // A label alone leaves the status alone.
    let response = api
        .send_json(Method::PUT, &path, &json!({"label": "pump 8"}))
        .await;
    assert_eq!(response.status(), 200);
    let after = api.get_json(&path).await;
    assert_eq!(
        (after["status"].as_str(), after["label"].as_str()),
        (Some(target), Some("pump 8"))
    );

    let bad = api
        .send_json(Method::PUT, &path, &json!({"status": "Active"}))
        .await;
    assert_eq!(bad.status(), 400);
    let mismatch = api
        .send_json(
            Method::PUT,
            &path,
            &json!({"iccid": "8988280666999999999", "status": "Enabled"}),
        )
        .await;
    assert_eq!(mismatch.status(), 400);
    assert_eq!(api.get_json(&path).await["label"], "pump 8");

    let events = api.get_json(&format!("{path}/events?pageSize=100")).await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"]
            .as_str()
            .unwrap()
            .starts_with("Status of SIM changed")));
}

#[tokio::test]
async fn post_many_updates_all_or_nothing() {
    let (running, api) = start_connected(quiet(10)).await;
    let iccids = running.simulator.iccids();
    let ok = api
        .update_sims(&json!([
            {"iccid": iccids[0], "status": "Disabled", "label": "a"},
            {"iccid": iccids[1], "status": "Disabled", "label": "b"},
        ]))
        .await;
    assert_eq!(ok.status(), 201);
    for (iccid, label) in [(&iccids[0], "a"), (&iccids[1], "b")] {
        let sim = api.get_json(&format!("/v1/sims/{iccid}")).await;
        assert_eq!(
            (sim["status"].as_str(), sim["label"].as_str()),
            (Some("Disabled"), Some(label))
        );
    }
    let refused = api
        .update_sims(&json!([
            {"iccid": iccids[2], "status": "Enabled", "label": "changed"},
            {"iccid": "8988280666999999999", "status": "Enabled"},
        ]))
        .await;
    assert_eq!(refused.status(), 404);
    assert_ne!(
        api.get_json(&format!("/v1/sims/{}", iccids[2])).await["label"],
        "changed"
    );
}

#[tokio::test]
async fn filters_and_sorting_of_the_list() {
    let (running, api, iccid) = start_quiet_with_iccid(30, 7).await;
    running.simulator.set_imei(&iccid, "490154203237518");
    let found: Vec<Value> = api.get_body("/v1/sims?q=imei:490154203237518").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["iccid"], iccid.as_str());
    let sorted: Vec<Value> = api.get_body("/v1/sims?pageSize=30&sort=-ip_address").await;
    let ips: Vec<&str> = sorted.iter().map(|s| s["ip_address"].as_str().unwrap()).collect();
    assert!(ips.windows(2).all(|w| w[0] >= w[1]), "{ips:?}");
    assert_eq!(api.get("/v1/sims?q=colour:red").await.status(), 400);
}

#[tokio::test]
async fn connectivity_status_follows_test_controls() {
    let (running, api, iccid) = start_quiet_with_iccid(10, 2).await;
    running.simulator.set_status(&iccid, true);
    running
        .simulator
        .consume_quota_to(&iccid, once_simulator::QuotaKind::Data, 10.0);
    running.simulator.set_connectivity(
        &iccid,
        Some("10.200.0.9".into()),
        Some("Telia".into()),
        Some("Sweden".into()),
        Some("NB-IoT".into()),
    );
    let status = api.get_json(&format!("/v1/sims/{iccid}/status")).await;
    assert!(["ONLINE", "ATTACHED"].contains(&status["status"].as_str().unwrap()));
    assert_eq!(status["location"]["operator"]["name"], "Telia");
    assert_eq!(status["location"]["country"]["name"], "Sweden");
    if status["status"] == "ONLINE" {
        assert_eq!(status["pdp_context"]["rat_type"]["description"], "NB-IoT");
        assert_eq!(status["pdp_context"]["ue_ip_address"], "10.200.0.9");
    }
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}")).await["ip_address"],
        "10.200.0.9"
    );

    running.simulator.set_status(&iccid, false);
    let offline = api.get_json(&format!("/v1/sims/{iccid}/status")).await;
    assert_eq!(offline["status"], "OFFLINE");
    assert!(offline.get("pdp_context").is_none());

    let info = api
        .get_json(&format!("/v1/sims/{iccid}/connectivity_info?ussd=true"))
        .await;
    assert!(info["subscriber_info"]["success"].is_boolean());
    assert!(info["ussd_info"].is_object());
    let reset = api.send(Method::POST, &format!("/v1/sims/{iccid}/reset")).await;
    assert_eq!(reset.status(), 201);
}

#[tokio::test]
async fn events_are_paged_with_totals() {
    let (running, api, iccid) = start_quiet_with_iccid(3, 0).await;
    for enabled in [false, true, false] {
        running.simulator.set_status(&iccid, enabled);
    }
    let response = api
        .get(&format!(
            "/v1/sims/{iccid}/events?page=1&pageSize=2&sort=-timestamp"
        ))
        .await;
    assert_eq!(response.status(), 200);
    let total: usize = header(&response, "X-Total-Count").parse().unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["totalEvents"], total);
    assert_eq!(body["totalPages"], total.div_ceil(2));
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["event_type"],
        "Status of SIM changed from 'Activated' to 'Deactivated'"
    );
    for field in [
        "timestamp",
        "event_type",
        "iccid",
        "imsi",
        "country",
        "operator",
        "mcc",
        "mnc",
        "alert",
        "event_severity",
    ] {
        assert!(events[0].get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn a_new_sim_appears_at_the_end_of_the_list() {
    let (running, api) = start_connected(quiet(12)).await;
    let added = running.simulator.add_sim();
    let response = api.get("/v1/sims?page=2&pageSize=10").await;
    assert_eq!(header(&response, "X-Total-Count"), "13");
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.last().unwrap()["iccid"], added.as_str());
    let iccids = running.simulator.iccids();
    assert!(iccids.windows(2).all(|w| w[0] < w[1]));
}

/// 1NCE lets an expired SIM be changed only by an extension: a label or IMEI lock through the
/// API is refused with 422 and its message, a status alone is not, and the portal (the test
/// control) still can.
#[tokio::test]
async fn put_of_label_or_imei_lock_on_an_expired_sim_is_refused_with_422() {
    let (running, api, iccid) = start_quiet_with_iccid(10, 5).await;
    let path = format!("/v1/sims/{iccid}");
    running
        .simulator
        .expire_quota(&iccid, once_simulator::QuotaKind::Data);
    let refused = api
        .send_json(
            Method::PUT,
            &path,
            &json!({"iccid": iccid, "status": "Enabled", "label": "late"}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("expired and cannot be modified via API"),
        "{body}"
    );
    let locked = api
        .send_json(
            Method::PUT,
            &path,
            &json!({"iccid": iccid, "status": "Enabled", "imei_lock": true}),
        )
        .await;
    assert_eq!(locked.status(), 422);
    assert_ne!(api.get_json(&path).await["label"], "late");
    let status_only = api
        .send_json(Method::PUT, &path, &json!({"iccid": iccid, "status": "Disabled"}))
        .await;
    assert_eq!(status_only.status(), 200);

    running
        .simulator
        .set_details(&iccid, Some("from the portal"), Some(true));
    assert_eq!(
        running.simulator.details(&iccid),
        (Some("from the portal".to_owned()), true)
    );
    let after = api.get_json(&path).await;
    assert_eq!(
        (after["label"].as_str(), after["imei_lock"].as_bool()),
        (Some("from the portal"), Some(true))
    );
}
