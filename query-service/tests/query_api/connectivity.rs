//! `GET /sims/{iccid}/connectivity`: the `sim_connectivity_history` read model, paged.

use readmodel::connectivity_history::insert_connectivity_history;
use readmodel::ConnectivityChange;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::common::*;

fn change(sim: &str, position: i64, network: &str, rat: Option<&str>) -> ConnectivityChange {
    ConnectivityChange {
        iccid: sim.to_owned(),
        position,
        observed_at: ts("2026-01-02T10:00:00Z") + chrono::Duration::minutes(position),
        recorded_at: ts("2026-01-02T10:00:01Z") + chrono::Duration::minutes(position),
        network: Some(network.to_owned()),
        country: Some("Germany".to_owned()),
        rat: rat.map(str::to_owned),
        ip_address: Some("10.0.0.1".to_owned()),
        actor: Some("connector:sync".to_owned()),
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn connectivity_history_pages_oldest_first(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sim = sim_row(1);
    insert_sim(&pool, &sim).await;
    insert_sim(&pool, &sim_row(2)).await;
    let sim_id = sim.iccid.clone();
    let other = sim_row(2).iccid;
    let mut conn = pool.acquire().await.unwrap();
    let rows = [
        change(&sim_id, 12, "Vodafone", Some("4G")),
        change(&other, 13, "Orange", None),
        change(&sim_id, 15, "Telekom", None),
        change(&sim_id, 20, "Telekom", Some("NB-IoT")),
    ];
    insert_connectivity_history(&mut conn, &rows).await.unwrap();
    // A replayed change adds nothing.
    insert_connectivity_history(&mut conn, &rows[..1]).await.unwrap();

    let first = app
        .get_json(&format!("/sims/{sim_id}/connectivity?limit=2"))
        .await;
    assert_eq!(first["iccid"], sim_id);
    assert_eq!(first["next_after"], 15);
    let changes = first["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["position"], 12);
    assert_eq!(changes[0]["network"], "Vodafone");
    assert_eq!(changes[0]["rat"], "4G");
    assert_eq!(changes[0]["observed_at"], "2026-01-02T10:12:00Z");
    assert_eq!(changes[0]["actor"], "connector:sync");
    assert_eq!(changes[1]["network"], "Telekom");
    assert_eq!(changes[1]["rat"], json!(null));

    let second = app
        .get_json(&format!("/sims/{sim_id}/connectivity?after=15"))
        .await;
    assert_eq!(second["changes"].as_array().unwrap().len(), 1);
    assert_eq!(second["changes"][0]["rat"], "NB-IoT");
    assert_eq!(second["next_after"], 20);
    let last = app
        .get_json(&format!("/sims/{sim_id}/connectivity?after=20"))
        .await;
    assert_eq!(last["changes"], json!([]));
    assert_eq!(last["next_after"], 20);

    let unknown = app.get(&format!("/sims/{}/connectivity", iccid(3)));
    expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    let bad = ["limit=0", "limit=1001", "after=-1", "after=x", "page=2"];
    expect_invalid_queries(&app, bad.map(|bad| format!("/sims/{sim_id}/connectivity?{bad}"))).await;
}
