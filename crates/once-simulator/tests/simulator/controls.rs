//! Connectivity reset, auto top-up and the account's self-set limits, and the refusals a
//! test sets for them.

use once_simulator::{Control, Refusals};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

#[tokio::test]
async fn a_reset_is_queued_recorded_and_refused_when_a_test_says_so() {
    let (running, api, iccid) = start_quiet_with_iccid(5, 2).await;
    let path = format!("/v1/sims/{iccid}/reset");
    assert_eq!(api.send(Method::POST, &path).await.status(), 201);
    assert_eq!(running.simulator.resets(&iccid), 1);
    let events = api
        .get_json(&format!("/v1/sims/{iccid}/events?pageSize=1000"))
        .await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"Delete PDP Context"), "{types:?}");

    running
        .simulator
        .set_refusal(Control::Reset, Some("Reset not possible right now"));
    let refused = api.send(Method::POST, &path).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["message"], "Reset not possible right now");
    assert_eq!(
        running.simulator.resets(&iccid),
        1,
        "a refused reset records nothing"
    );
    let unknown = api.send(Method::POST, "/v1/sims/8988303000999999999/reset").await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn auto_top_up_is_stored_per_sim_and_refills_an_exhausted_data_quota() {
    let (running, api, iccid) = start_quiet_with_iccid(5, 1).await;
    let other = running.simulator.iccids()[3].clone();
    let on = json!({"enabled": true, "iccids": [iccid]});
    let answer = api.send_json(Method::POST, "/v1/sims/autoTopup", &on).await;
    assert_eq!(answer.status(), 201);
    assert!(running.simulator.auto_top_up(&iccid));
    assert!(!running.simulator.auto_top_up(&other));

    let quota = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    let left_mb: f64 = quota["volume"].as_f64().unwrap();
    let today = running.simulator.now().date_naive();
    let all_of_it = (left_mb * 1_000_000.0) as u64 + 1_000_000;
    running.simulator.add_usage(&iccid, today, all_of_it, 0, 0);
    let after = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    assert!(
        after["volume"].as_f64().unwrap() > 0.0,
        "topped up automatically: {after}"
    );

    running.simulator.add_usage(&other, today, u64::MAX / 4, 0, 0);
    let drained = api.get_json(&format!("/v1/sims/{other}/quota/data")).await;
    assert_eq!(drained["volume"].as_f64().unwrap(), 0.0, "{drained}");

    let off = json!({"enabled": false, "iccids": [iccid]});
    running
        .simulator
        .set_refusal(Control::AutoTopUp, Some("Auto top up is not available"));
    let refused = api.send_json(Method::POST, "/v1/sims/autoTopup", &off).await;
    assert_eq!(refused.status(), 422);
    assert!(running.simulator.auto_top_up(&iccid));
    running.simulator.set_refusals(Refusals::default());
    assert_eq!(
        api.send_json(Method::POST, "/v1/sims/autoTopup", &off)
            .await
            .status(),
        201
    );
    assert!(!running.simulator.auto_top_up(&iccid));
}

#[tokio::test]
async fn an_expired_sim_refuses_auto_top_up_with_422() {
    let (running, api, iccid) = start_quiet_with_iccid(5, 0).await;
    running
        .simulator
        .expire_quota(&iccid, once_simulator::QuotaKind::Data);
    let answer = api
        .send_json(
            Method::POST,
            "/v1/sims/autoTopup",
            &json!({"enabled": true, "iccids": [iccid]}),
        )
        .await;
    assert_eq!(answer.status(), 422);
    assert!(!running.simulator.auto_top_up(&iccid));
}

#[tokio::test]
async fn limits_are_selected_from_each_services_list_and_a_bad_id_is_refused() {
    let (running, api, _) = start_quiet_with_iccid(2, 0).await;
    let data = api.get_json("/v1/sims/data/limits").await;
    let ids: Vec<u64> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    assert!(ids.len() > 1);
    assert_eq!(data[0]["unit"], "MB");
    assert_eq!(api.get_json("/v1/sims/smsMO/limits").await[0]["unit"], "SMS");
    assert_eq!(api.get_json("/v1/sims/smsMT/limits").await[0]["unit"], "SMS");
    assert_eq!(api.get("/v1/sims/voice/limits").await.status(), 404);

    let set = json!({"dataLimitId": ids[1], "smsMtLimitId": 2, "smsMoLimitId": 3});
    assert_eq!(
        api.send_json(Method::POST, "/v1/sims/limits", &set)
            .await
            .status(),
        201
    );
    let current = api.get_json("/v1/sims/limits").await;
    assert_eq!(current["data"]["id"], ids[1]);
    assert_eq!(current["data"]["limit"], data[1]["limit"]);
    assert_eq!(current["smsMt"]["id"], 2);
    assert_eq!(current["smsMo"]["id"], 3);

    let bad = api
        .send_json(
            Method::POST,
            "/v1/sims/limits",
            &json!({"dataLimitId": 99, "smsMtLimitId": 1}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("99"), "{body}");
    assert_eq!(running.simulator.account_limits().sms_mt, 2, "all or nothing");
    let not_json = api
        .request(Method::POST, "/v1/sims/limits")
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    running
        .simulator
        .set_refusal(Control::Limits, Some("Limits cannot be changed"));
    let refused = api
        .send_json(Method::POST, "/v1/sims/limits", &json!({"dataLimitId": 1}))
        .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(running.simulator.account_limits().data, ids[1]);
}

#[tokio::test]
async fn refusals_are_set_over_admin_http() {
    let (running, api, iccid) = start_quiet_with_iccid(2, 0).await;
    let set = api
        .http
        .put(format!("{}/_admin/refusals", api.base))
        .json(&json!({"reset": "busy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(running.simulator.refusals().reset.as_deref(), Some("busy"));
    let refused = api.send(Method::POST, &format!("/v1/sims/{iccid}/reset")).await;
    assert_eq!(refused.status(), 422);
    let bad = api
        .http
        .put(format!("{}/_admin/refusals", api.base))
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// 1NCE resets asynchronously: the data session drops (the SIM is only attached) and comes
/// back a little later.
#[tokio::test]
async fn after_a_reset_the_data_session_is_down_until_the_sim_re_attaches() {
    let (running, api) = start_connected(quiet(20)).await;
    let mut online = None;
    for iccid in running.simulator.iccids() {
        if api.get_json(&format!("/v1/sims/{iccid}/status")).await["status"] == "ONLINE" {
            online = Some(iccid);
            break;
        }
    }
    let iccid = online.expect("an online SIM in the fleet");
    let status = format!("/v1/sims/{iccid}/status");
    assert_eq!(
        api.send(Method::POST, &format!("/v1/sims/{iccid}/reset"))
            .await
            .status(),
        201
    );
    let down = api.get_json(&status).await;
    assert_eq!(down["status"], "ATTACHED", "{down}");
    assert!(down.get("pdp_context").is_none(), "{down}");
    running.simulator.advance(std::time::Duration::from_secs(31));
    let up = api.get_json(&status).await;
    assert_eq!(up["status"], "ONLINE", "{up}");
    assert!(up["pdp_context"].is_object());
}
