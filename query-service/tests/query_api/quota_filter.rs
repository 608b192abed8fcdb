//! `GET /sims?quota_state=&quota=`: the quota states at their 80 % and 100 % bounds, combined
//! with the other filters, sorts and totals.

use domain::SimStatus;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::common::*;

/// A quota's `(total, remaining)`, or none reported.
type Numbers = Option<(i64, i64)>;

/// SIMs 1..=8 with quotas on either side of the bounds (data `total/remaining`, SMS the same):
/// 1 data 1000/1000 ok, 2 1000/201 ok (79.9 % used), 3 1000/200 warning (80 %), 4 1000/1
/// warning, 5 1000/0 exhausted, 6 no quota reported, 7 data 1000/900 ok but SMS 10/2 warning,
/// 8 data 1000/100 warning and SMS 10/0 exhausted. Odd SIMs active, even suspended.
async fn quota_fleet(pool: &PgPool) -> Vec<String> {
    let quotas: [(Numbers, Numbers); 8] = [
        (Some((1000, 1000)), None),
        (Some((1000, 201)), None),
        (Some((1000, 200)), None),
        (Some((1000, 1)), None),
        (Some((1000, 0)), None),
        (None, None),
        (Some((1000, 900)), Some((10, 2))),
        (Some((1000, 100)), Some((10, 0))),
    ];
    let mut all = Vec::new();
    for (i, (data, sms)) in quotas.into_iter().enumerate() {
        let n = i as u32 + 1;
        let mut sim = sim_row(n);
        sim.status = if n % 2 == 1 {
            SimStatus::Active
        } else {
            SimStatus::Suspended
        };
        (sim.data_total, sim.data_remaining) = (data.map(|d| d.0), data.map(|d| d.1));
        (sim.sms_total, sim.sms_remaining) = (sms.map(|s| s.0), sms.map(|s| s.1));
        insert_sim(pool, &sim).await;
        all.push(sim.iccid);
    }
    all
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn quota_states_split_at_80_and_100_percent_and_combine(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let all = quota_fleet(&pool).await;
    let sims = |numbers: &[usize]| -> Vec<String> { numbers.iter().map(|n| all[n - 1].clone()).collect() };
    let by_iccid = format!("quota_state=ok&iccid={}", all[1]);
    for (query, expected) in [
        ("quota_state=ok", sims(&[1, 2])),
        ("quota_state=warning", sims(&[3, 4, 7])),
        ("quota_state=exhausted", sims(&[5, 8])),
        ("quota_state=ok,warning,exhausted", sims(&[1, 2, 3, 4, 5, 7, 8])),
        ("quota_state=ok&quota=data", sims(&[1, 2, 7])),
        ("quota_state=warning&quota=data", sims(&[3, 4, 8])),
        ("quota_state=warning,exhausted&quota=data", sims(&[3, 4, 5, 8])),
        ("quota_state=warning&quota=sms", sims(&[7])),
        ("quota_state=exhausted&quota=sms", sims(&[8])),
        ("quota_state=warning&status=active", sims(&[3, 7])),
        ("quota_state=warning,exhausted&status=suspended", sims(&[4, 8])),
        ("quota_state=warning&sort=-iccid", sims(&[7, 4, 3])),
        (by_iccid.as_str(), sims(&[2])),
    ] {
        let answer = app.get(&format!("/sims?{query}")).answer().await;
        assert_eq!(answer.status, StatusCode::OK, "{query}");
        assert_eq!(iccids(&answer.body), expected, "{query}");
        assert_eq!(
            answer.header("x-total-count"),
            expected.len().to_string(),
            "{query}"
        );
        // A page shorter than the matches: the total is counted, not read off the page.
        let paged = app.get(&format!("/sims?{query}&page_size=1")).answer().await;
        assert_eq!(
            paged.header("x-total-count"),
            expected.len().to_string(),
            "{query}"
        );
        assert_eq!(paged.header("x-total-count-exact"), "true", "{query}");
        assert_eq!(iccids(&paged.body), expected[..1].to_vec(), "{query}");
    }
    // Keyset pages carry the filter too.
    let first = app
        .get("/sims?quota_state=warning&page_size=2&after=")
        .answer()
        .await;
    let cursor = first.header("x-next-cursor").to_owned();
    let next = app
        .get_json(&format!("/sims?quota_state=warning&page_size=2&after={cursor}"))
        .await;
    assert_eq!(iccids(&next), sims(&[7]));
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn quota_states_follow_the_numbers_the_projectors_write(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let mut sim = sim_row(1);
    (sim.data_total, sim.data_remaining) = (Some(100), Some(21));
    insert_sim(&pool, &sim).await;
    assert_eq!(iccids(&app.get_json("/sims?quota_state=ok").await).len(), 1);
    sim.data_remaining = Some(20);
    insert_sim(&pool, &sim).await;
    assert_eq!(iccids(&app.get_json("/sims?quota_state=warning").await).len(), 1);
    assert!(iccids(&app.get_json("/sims?quota_state=ok").await).is_empty());
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn bad_quota_filters_are_refused(pool: PgPool) {
    let app = QueryApi::start(pool).await;
    expect_invalid_queries(
        &app,
        [
            "/sims?quota_state=full",
            "/sims?quota_state=",
            "/sims?quota_state=ok,half",
            "/sims?quota_state=ok&quota=voice",
            "/sims?quota=data",
            "/sims?colour=red",
        ],
    )
    .await;
    let response = app.get("/sims?quota_state=full").send().await.unwrap();
    let body = error_body(response, StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    assert_eq!(body["details"]["parameter"], "quota_state", "{body}");
}
