//! What a fuzzer does not try on the read side: page sizes and limits far out of range,
//! instants at the edges of time, SQL metacharacters in every filter, ICCIDs of other scripts'
//! digits. Every refusal is a 4xx in the error shape; nothing answers 5xx; nothing changes.

use crate::common::*;
use reqwest::StatusCode;
use sqlx::PgPool;

async fn rows(app: &QueryApi) -> Vec<i64> {
    app.count_rows(&["sims", "events"]).await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn out_of_range_paging_instants_and_metacharacters_are_refused_or_harmless(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sim = sim_row(1);
    insert_sim(&pool, &sim).await;
    register(&app.store(), &sim.iccid, "a", ts("2026-03-01T00:00:00Z")).await;
    let before = rows(&app).await;

    let out_of_range = [
        "/sims?page_size=1000000000",
        "/sims?page_size=-1",
        "/sims?page_size=0",
        "/sims?page=-5",
        "/sims?page=1000000000000",
        "/events?limit=1000000000",
        "/events?limit=-1",
        "/events?after=-1",
        "/events?after=99999999999999999999",
    ];
    expect_invalid_queries(&app, out_of_range).await;

    // The edges of time: before the SIM existed, far after, and past what an instant holds.
    let state = |as_of: &str| format!("/sims/{}/state?as_of={as_of}", sim.iccid);
    let before_it_existed = app.get(&state("0001-01-01T00:00:00Z"));
    expect_error(before_it_existed, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    let future = app.get_json(&state("9999-12-31T23:59:59Z")).await;
    assert_eq!(future["iccid"], sim.iccid.as_str(), "its latest state");
    let unrepresentable = [
        "%2B275760-09-13T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z",
    ];
    expect_invalid_queries(&app, unrepresentable.map(state)).await;
    let usage = format!(
        "/sims/{}/usage?from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z",
        sim.iccid
    );
    let status = app.get(&usage).response().await.status();
    assert!(status.is_client_error() || status.is_success(), "{status}");

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
            let response = app.get(&format!("/sims?{filter}={encoded}")).response().await;
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
        let strict = ["status", "sort"].map(|filter| format!("/sims?{filter}={encoded}"));
        expect_invalid_queries(&app, strict).await;
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
            let read = app.get(&format!("/sims/{foreign}{path}"));
            expect_error(read, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
        }
    }
    assert_eq!(rows(&app).await, before, "nothing changed");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
