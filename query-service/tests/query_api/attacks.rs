//! What a fuzzer does not try on the read side: page sizes and limits far out of range,
//! instants at the edges of time, SQL metacharacters in every filter, ICCIDs of other scripts'
//! digits. Every refusal is a 4xx in the error shape; nothing answers 5xx; nothing changes.

use crate::common::*;
use reqwest::StatusCode;
use sqlx::PgPool;

async fn rows(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM sims), (SELECT count(*) FROM events)")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn out_of_range_paging_instants_and_metacharacters_are_refused_or_harmless(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sim = sim_row(1);
    insert_sim(&pool, &sim).await;
    register(&app.store(), &sim.iccid, "a", ts("2026-03-01T00:00:00Z")).await;
    let before = rows(&pool).await;

    for query in [
        "/sims?page_size=1000000000",
        "/sims?page_size=-1",
        "/sims?page_size=0",
        "/sims?page=-5",
        "/sims?page=1000000000000",
        "/events?limit=1000000000",
        "/events?limit=-1",
        "/events?after=-1",
        "/events?after=99999999999999999999",
    ] {
        let response = app.get(query).send().await.unwrap();
        error_body(response, StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    }

    // The edges of time: before the SIM existed, far after, and past what an instant holds.
    let state = |as_of: &str| format!("/sims/{}/state?as_of={as_of}", sim.iccid);
    let response = app.get(&state("0001-01-01T00:00:00Z")).send().await.unwrap();
    error_body(response, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    let future = app.get_json(&state("9999-12-31T23:59:59Z")).await;
    assert_eq!(future["iccid"], sim.iccid.as_str(), "its latest state");
    for unrepresentable in [
        "%2B275760-09-13T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
    ] {
        let response = app.get(&state(unrepresentable)).send().await.unwrap();
        error_body(response, StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    }
    let usage = format!(
        "/sims/{}/usage?from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z",
        sim.iccid
    );
    let response = app.get(&usage).send().await.unwrap();
    assert!(
        response.status().is_client_error() || response.status().is_success(),
        "{}",
        response.status()
    );

    // SQL metacharacters in every filter: a search for them finds nothing, and breaks nothing.
    for evil in [
        "'; DROP TABLE sims; --",
        "%' OR '1'='1",
        "\\\\",
        "_%",
        "\u{0}",
        "$1",
        "\"x\"",
    ] {
        let encoded: String = url_encode(evil);
        for filter in ["label", "tag", "iccid", "imsi", "msisdn"] {
            let response = app
                .get(&format!("/sims?{filter}={encoded}"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                status == StatusCode::OK || status.is_client_error(),
                "{filter}={evil:?}: {status}"
            );
            if status == StatusCode::OK {
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(
                    body.as_array().map(Vec::len),
                    Some(0),
                    "{filter}={evil:?} matched"
                );
            } else {
                let code = error_body(response, status, "INVALID_QUERY").await;
                assert!(code["details"].is_object());
            }
        }
        for filter in ["status", "sort"] {
            let response = app
                .get(&format!("/sims?{filter}={encoded}"))
                .send()
                .await
                .unwrap();
            error_body(response, StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
        }
    }

    // ICCIDs of other scripts' digits, in every path that takes one.
    for foreign in ["٨٩٨٨٣٠٣٠٠٠٠٠٠٠٠٠٠٠١", "８９８８３０３０００００００００００１"]
    {
        for path in [
            "",
            "/usage",
            "/quotas",
            "/sms",
            "/events",
            "/state?as_of=2026-03-02T00:00:00Z",
        ] {
            let response = app.get(&format!("/sims/{foreign}{path}")).send().await.unwrap();
            error_body(response, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
        }
    }
    assert_eq!(rows(&pool).await, before, "nothing changed");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
