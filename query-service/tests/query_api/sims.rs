//! The read-model routes: list, detail (Postgres and Redis), usage, quotas, SMS, fleet, auth,
//! OpenAPI.

use domain::SimStatus;

use crate::common::*;
use chrono::Duration;
use readmodel::SimView;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::http::Answer;

/// The messages' payloads in a page of the SMS list.
fn payloads(page: &Value) -> Vec<&str> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect()
}

/// 30 SIMs: status by n % 3, tags `even` / `five`, labels `pump-NN` (reversed) on the first
/// 20, registration times in a shuffled order.
async fn fleet(pool: &PgPool) -> Vec<SimView> {
    let mut sims = Vec::new();
    for n in 1..=30u32 {
        let mut sim = sim_row(n);
        sim.status = [SimStatus::Inactive, SimStatus::Active, SimStatus::Suspended][(n % 3) as usize];
        if n % 2 == 0 {
            sim.tags.push("even".into());
        }
        if n % 5 == 0 {
            sim.tags.push("five".into());
        }
        if n <= 20 {
            sim.label = Some(format!("pump-{:02}", 21 - n));
        }
        sim.registered_at = ts("2026-01-01T00:00:00Z") + Duration::minutes(i64::from((n * 7) % 30));
        insert_sim(pool, &sim).await;
        sims.push(sim);
    }
    sims
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn lists_pages_filters_and_sorts(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sims = fleet(&pool).await;
    let all: Vec<String> = sims.iter().map(|s| s.iccid.clone()).collect();

    let first = app.get("/sims").expect_answer(StatusCode::OK).await;
    assert_eq!(first.header("x-total-count"), "30");
    assert_eq!(iccids(&first.body), all);
    assert_eq!(first.body[0], serde_json::to_value(&sims[0]).unwrap());

    let second = app.get("/sims?page=2&page_size=7").answer().await;
    assert_eq!(second.header("x-total-count"), "30");
    assert_eq!(second.header("x-page"), "2");
    let link = second.header("link");
    assert!(link.contains("page_size=7&page=3>; rel=\"next\""), "{link}");
    assert!(link.contains("page=5>; rel=\"last\""), "{link}");
    assert_eq!(iccids(&second.body), all[7..14].to_vec());

    let last = app.get("/sims?page=5&page_size=7").answer().await;
    assert_eq!(iccids(&last.body), all[28..].to_vec());
    let past_the_end = app.get("/sims?page=9&page_size=7").answer().await;
    assert_eq!(past_the_end.header("x-total-count"), "30");
    assert_eq!(past_the_end.body, json!([]));

    let expect = |filter: &dyn Fn(&SimView) -> bool| -> Vec<String> {
        sims.iter()
            .filter(|s| filter(s))
            .map(|s| s.iccid.clone())
            .collect()
    };
    for (query, expected) in [
        ("status=active", expect(&|s| s.status == SimStatus::Active)),
        (
            "status=active,suspended",
            expect(&|s| s.status != SimStatus::Inactive),
        ),
        ("tag=even", expect(&|s| s.tags.contains(&"even".into()))),
        ("tag=even,five", expect(&|s| s.tags.len() == 2)),
        (
            "label=PUMP-1",
            expect(&|s| s.label.as_deref().is_some_and(|l| l.starts_with("pump-1"))),
        ),
        ("iccid=898830300010000000", all[..9].to_vec()),
        (
            "imsi=90140510000002",
            expect(&|s| s.imsi.starts_with("90140510000002")),
        ),
        (
            "status=active&tag=even",
            expect(&|s| s.status == SimStatus::Active && s.tags.contains(&"even".into())),
        ),
    ] {
        let answer = app.get(&format!("/sims?{query}")).answer().await;
        assert_eq!(answer.status, StatusCode::OK, "{query}");
        assert_eq!(
            answer.header("x-total-count"),
            expected.len().to_string(),
            "{query}"
        );
        assert!(!expected.is_empty(), "{query}");
        assert_eq!(iccids(&answer.body), expected, "{query}");
    }
    // A full 20-digit ICCID finds its SIM.
    let body = app.get_json(&format!("/sims?iccid={}", with_luhn(&all[4]))).await;
    assert_eq!(iccids(&body), vec![all[4].clone()]);

    let mut by_registration = sims.clone();
    by_registration.sort_by_key(|s| s.registered_at);
    let expected: Vec<String> = by_registration.iter().rev().map(|s| s.iccid.clone()).collect();
    assert_eq!(
        iccids(&app.get_json("/sims?sort=-registered_at&page_size=500").await),
        expected
    );

    let mut labelled: Vec<&SimView> = sims.iter().filter(|s| s.label.is_some()).collect();
    labelled.sort_by_key(|s| s.label.clone());
    let mut expected: Vec<String> = labelled.iter().map(|s| s.iccid.clone()).collect();
    expected.extend(all[20..].iter().cloned()); // no label: last, by ICCID
    assert_eq!(iccids(&app.get_json("/sims?sort=label").await), expected);

    let mut by_status = sims.clone();
    by_status.sort_by(|a, b| (a.status.as_str(), &a.iccid).cmp(&(b.status.as_str(), &b.iccid)));
    let expected: Vec<String> = by_status.iter().map(|s| s.iccid.clone()).collect();
    assert_eq!(iccids(&app.get_json("/sims?sort=status").await), expected);
    let reversed: Vec<String> = all.iter().rev().cloned().collect();
    assert_eq!(iccids(&app.get_json("/sims?sort=-iccid").await), reversed);

    let bad = [
        "page=0",
        "page=abc",
        "page_size=0",
        "page_size=501",
        "sort=colour",
        "status=gone",
        "iccid=89x",
        "unknown=1",
    ];
    expect_invalid_queries(&app, bad.map(|bad| format!("/sims?{bad}"))).await;
    assert_eq!(
        app.get("/sims?page_size=500").response().await.status(),
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn detail_from_postgres_then_from_redis_with_etag(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let mut sim = sim_row(1);
    sim.label = Some("from-postgres".into());
    sim.last_position = 41;
    insert_sim(&pool, &sim).await;

    let detail = || app.get(&format!("/sims/{}", sim.iccid));
    let from_postgres = detail().expect_answer(StatusCode::OK).await;
    assert_eq!(from_postgres.header("etag"), "\"41\"");
    assert_eq!(from_postgres.body, serde_json::to_value(&sim).unwrap());
    // A miss fills the cache (off the answer's path); the 20-digit form names the same SIM.
    let mut filled = None;
    for _ in 0..50 {
        filled = app.state.cache.get_sim(&sim.iccid).await;
        if filled.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert_eq!(filled.as_ref(), Some(&sim), "the miss filled the cache");
    let body = app.get_json(&format!("/sims/{}", with_luhn(&sim.iccid))).await;
    assert_eq!(body["label"], "from-postgres");

    let not_modified = detail().header("if-none-match", "\"41\"").response().await;
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.headers()["etag"], "\"41\"");
    assert!(not_modified.bytes().await.unwrap().is_empty());
    let changed = detail().header("if-none-match", "\"40\"").response().await;
    assert_eq!(changed.status(), StatusCode::OK);

    // What the projectors put in Redis is served as it is.
    let mut cached = sim.clone();
    cached.label = Some("from-redis".into());
    cached.last_position = 42;
    app.state.cache.put_sim(&cached).await;
    let from_redis = detail().answer().await;
    assert_eq!(from_redis.header("etag"), "\"42\"");
    assert_eq!(from_redis.body["label"], "from-redis");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"query_cache_hits_total{kind="sim"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"query_cache_misses_total{kind="sim"} 1"#),
        "{metrics}"
    );

    let unknown = app.get(&format!("/sims/{}", iccid(2)));
    let error = expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    assert_eq!(error["details"]["iccid"], iccid(2));
    for bad in ["123", "8988303000100000001x", "89883030001000000010"] {
        let detail = app.get(&format!("/sims/{bad}"));
        expect_error(detail, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn detail_without_redis_reads_postgres(pool: PgPool) {
    let app = QueryApi::start_with(pool.clone(), |config| {
        config.common.redis_url = "redis://127.0.0.1:1".into();
    })
    .await;
    let sim = sim_row(3);
    insert_sim(&pool, &sim).await;
    let body = app.get_json(&format!("/sims/{}", sim.iccid)).await;
    assert_eq!(body, serde_json::to_value(&sim).unwrap());
    let summary = app.get_json("/fleet/summary").await;
    assert_eq!(summary["sims_total"], 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn usage_buckets_and_range_errors(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let (a, b) = (sim_row(1), sim_row(2));
    insert_sim(&pool, &a).await;
    insert_sim(&pool, &b).await;
    insert_usage(&pool, &a.iccid, "2026-02-01T10:05:00Z", 100, 1).await;
    insert_usage(&pool, &a.iccid, "2026-02-01T10:55:00Z", 50, 0).await;
    insert_usage(&pool, &a.iccid, "2026-02-01T13:00:00Z", 7, 2).await;
    insert_usage(&pool, &a.iccid, "2026-02-03T01:00:00Z", 1000, 0).await;
    insert_usage(&pool, &b.iccid, "2026-02-01T10:30:00Z", 5, 0).await;

    let body = app
        .get_json(&format!(
            "/sims/{}/usage?from=2026-02-01T10:30:00Z&to=2026-02-02T00:00:00Z",
            a.iccid
        ))
        .await;
    assert_eq!(
        body,
        json!({"iccid": a.iccid, "granularity": "hour", "from": "2026-02-01T10:30:00Z",
               "to": "2026-02-02T00:00:00Z", "points": [
            {"bucket": "2026-02-01T10:00:00Z", "data_bytes": 150, "sms_mo": 1, "sms_mt": 0},
            {"bucket": "2026-02-01T13:00:00Z", "data_bytes": 7, "sms_mo": 2, "sms_mt": 0},
        ]})
    );
    // An offset written with an unencoded `+` (decoded as a space) still parses.
    let body = app
        .get_json(&format!(
            "/sims/{}/usage?from=2026-02-01T00:00:00+01:00&to=2026-02-05T00:00:00Z&granularity=day",
            a.iccid
        ))
        .await;
    assert_eq!(body["from"], "2026-01-31T23:00:00Z");
    let days: Vec<(String, i64)> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["bucket"].as_str().unwrap().to_owned(),
                p["data_bytes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-02-01T00:00:00Z".into(), 157),
            ("2026-02-03T00:00:00Z".into(), 1000)
        ]
    );
    // Defaults: the last 24 hours, hourly (nothing recorded then).
    let body = app.get_json(&format!("/sims/{}/usage", a.iccid)).await;
    assert_eq!(body["granularity"], "hour");
    assert_eq!(body["points"], json!([]));

    let fleet = app
        .get_json("/fleet/usage?from=2026-02-01T00:00:00Z&to=2026-02-02T00:00:00Z")
        .await;
    assert_eq!(
        fleet["points"][0],
        json!({"bucket": "2026-02-01T10:00:00Z", "data_bytes": 155, "sms_mo": 1, "sms_mt": 0})
    );
    assert_eq!(fleet["points"].as_array().unwrap().len(), 2);

    for (query, code) in [
        (
            "from=2026-02-02T00:00:00Z&to=2026-02-01T00:00:00Z",
            "INVALID_RANGE",
        ),
        (
            "from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z",
            "INVALID_RANGE",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2026-02-02T00:00:00Z",
            "INVALID_RANGE",
        ),
        (
            "from=2025-01-01T00:00:00Z&to=2026-02-02T00:00:00Z&granularity=day",
            "INVALID_RANGE",
        ),
        ("from=yesterday", "INVALID_QUERY"),
        ("granularity=week", "INVALID_QUERY"),
    ] {
        for path in [
            format!("/sims/{}/usage?{query}", a.iccid),
            format!("/fleet/usage?{query}"),
        ] {
            expect_error(app.get(&path), StatusCode::BAD_REQUEST, code).await;
        }
    }
    let month = format!(
        "/sims/{}/usage?from=2026-01-02T00:00:00Z&to=2026-02-02T00:00:00Z",
        a.iccid
    );
    let ok = app.get(&month).response().await;
    assert_eq!(ok.status(), StatusCode::OK, "31 days of hours is allowed");
    let unknown = app.get(&format!("/sims/{}/usage", iccid(9)));
    expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn quotas_and_sms(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sim = sim_row(1);
    insert_sim(&pool, &sim).await;
    insert_sim(&pool, &sim_row(2)).await;
    for (kind, total, remaining) in [("sms", 250, 200), ("data", 1_000_000, 10)] {
        sqlx::query(
            "INSERT INTO sim_quotas (iccid, kind, total, remaining, expiry_date, period, thresholds_crossed, \
             version, last_position, updated_at) VALUES ($1, $2, $3, $4, '2026-12-31T00:00:00Z', 1, '{80}', 2, 9, now())",
        )
        .bind(&sim.iccid)
        .bind(kind)
        .bind(total)
        .bind(remaining)
        .execute(&pool)
        .await
        .unwrap();
    }
    let quotas = app.get_json(&format!("/sims/{}/quotas", sim.iccid)).await;
    assert_eq!(quotas.as_array().unwrap().len(), 2);
    assert_eq!(quotas[0]["kind"], "data");
    assert_eq!(quotas[0]["remaining"], 10);
    assert_eq!(quotas[0]["thresholds_crossed"], json!([80]));
    assert_eq!(quotas[1]["kind"], "sms");
    assert_eq!(quotas[1]["expiry_date"], "2026-12-31T00:00:00Z");
    assert_eq!(
        app.get_json(&format!("/sims/{}/quotas", iccid(2))).await,
        json!([])
    );

    for minute in 0..12 {
        let direction = if minute % 4 == 0 { "MO" } else { "MT" };
        let (requested, received) = if direction == "MT" {
            (Some(ts("2026-02-01T10:00:00Z") + Duration::minutes(minute)), None)
        } else {
            (None, Some(ts("2026-02-01T10:00:00Z") + Duration::minutes(minute)))
        };
        sqlx::query(
            "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, requested_at, received_at, \
             version, last_position, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, now())",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(&sim.iccid)
        .bind(direction)
        .bind(if direction == "MT" { "delivered" } else { "received" })
        .bind(format!("message {minute}"))
        .bind(requested)
        .bind(received)
        .execute(&pool)
        .await
        .unwrap();
    }
    let sms = |query: &str| app.get(&format!("/sims/{}/sms?{query}", sim.iccid));
    let first = sms("page_size=5").answer().await;
    assert_eq!(first.header("x-total-count"), "12");
    assert_eq!(
        payloads(&first.body),
        ["message 11", "message 10", "message 9", "message 8", "message 7"]
    );
    let second_mo = sms("page=2&page_size=5&direction=MO").answer().await;
    assert_eq!(second_mo.header("x-total-count"), "3");
    assert_eq!(second_mo.body, json!([]));
    let mo = app
        .get_json(&format!("/sims/{}/sms?direction=MO", sim.iccid))
        .await;
    assert_eq!(payloads(&mo), ["message 8", "message 4", "message 0"]);
    expect_error(sms("direction=up"), StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    let unknown = app.get(&format!("/sims/{}/quotas", iccid(7)));
    expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn fleet_summary_is_cached_briefly(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let mut active = sim_row(1);
    active.status = SimStatus::Active;
    active.pending_change = Some("suspension".into());
    insert_sim(&pool, &active).await;
    insert_sim(&pool, &sim_row(2)).await;
    let summary = app.get_json("/fleet/summary").await;
    assert_eq!(summary["sims_total"], 2);
    assert_eq!(
        summary["sims_by_status"],
        json!({"active": 1, "inactive": 1, "suspended": 0, "terminated": 0})
    );
    assert_eq!(summary["changes_pending"], 1);
    // The second read is the cached summary (events do not invalidate it), until it is a
    // second old; a read with a consistency token computes it now.
    insert_sim(&pool, &sim_row(3)).await;
    assert_eq!(app.get_json("/fleet/summary").await["sims_total"], 2);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"query_cache_hits_total{kind="fleet_summary"} 1"#),
        "{metrics}"
    );
    let fresh = app.get_consistent("/fleet/summary", "0").answer().await.body;
    assert_eq!(fresh["sims_total"], 3);
    tokio::time::sleep(app.state.fleet_summary.max_age).await;
    assert_eq!(app.get_json("/fleet/summary").await["sims_total"], 3);
    // Single flight: twenty readers at once when it is stale, one computation.
    let misses = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(r#"query_cache_misses_total{kind="fleet_summary"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = misses(&app.metrics().await);
    tokio::time::sleep(app.state.fleet_summary.max_age).await;
    let readers: Vec<_> = (0..20).map(|_| app.get_json("/fleet/summary")).collect();
    for summary in futures::future::join_all(readers).await {
        assert_eq!(summary["sims_total"], 3);
    }
    assert_eq!(
        misses(&app.metrics().await),
        before + 1,
        "one computation for twenty readers"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn viewers_and_api_keys_read_and_strangers_do_not(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    insert_sim(&pool, &sim_row(1)).await;
    let list = || app.anonymous("/sims");
    expect_error(list(), StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
    let not_a_jwt = list().bearer_auth("not-a-jwt");
    expect_error(not_a_jwt, StatusCode::UNAUTHORIZED, "INVALID_TOKEN").await;
    for path in [
        "/sims/8988303000100000001",
        "/fleet/summary",
        "/events",
        "/sims/8988303000100000001/state",
    ] {
        let response = app.anonymous(path).response().await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(app.get("/sims").response().await.status(), StatusCode::OK);

    let key = platform::auth::generate_api_key();
    sqlx::query(
        "INSERT INTO api_keys (id, name, prefix, key_hash, role) VALUES ($1, 'dashboard', $2, $3, 'viewer')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(&key.prefix)
    .bind(&key.hash)
    .execute(&pool)
    .await
    .unwrap();
    let with_key = list().header("x-api-key", &key.key).response().await;
    assert_eq!(with_key.status(), StatusCode::OK);
    let unknown_key = list().header("x-api-key", "iot_key_unknown");
    expect_error(unknown_key, StatusCode::UNAUTHORIZED, "INVALID_API_KEY").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn openapi_lists_every_route(pool: PgPool) {
    let app = QueryApi::start(pool).await;
    let document = app.client.get(app.url("/openapi.json")).answer().await.body;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/sims",
        "/api/v1/sims/{iccid}",
        "/api/v1/sims/{iccid}/usage",
        "/api/v1/sims/{iccid}/quotas",
        "/api/v1/sims/{iccid}/sms",
        "/api/v1/sims/{iccid}/events",
        "/api/v1/sims/{iccid}/state",
        "/api/v1/fleet/summary",
        "/api/v1/fleet/usage",
        "/api/v1/events",
    ] {
        let get = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))["get"];
        assert!(get["responses"]["200"].is_object(), "{path}");
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"X-Consistency-Token"), "{path}: {names:?}");
    }
    let list = &paths["/api/v1/sims"]["get"];
    let page_size = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "page_size")
        .unwrap();
    assert_eq!(page_size["schema"]["maximum"], 500);
    assert!(list["responses"]["200"]["headers"]["X-Total-Count"].is_object());
    let schemas = &document["components"]["schemas"];
    for schema in [
        "SimView",
        "StoredEvent",
        "FleetSummary",
        "ErrorBody",
        "SimUsage",
        "FeedPage",
        "SimHistory",
    ] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    // Unrelated to OpenAPI: the ops routes answer.
    let ready = app.client.get(app.url("/ready")).response().await;
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Every page of a list, walked with `after=` (pages of 4) from the first page's cursor.
async fn walk_keyset(app: &QueryApi, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut path = format!("/sims?{query}&page_size=4&after=");
    for _ in 0..50 {
        let page = app.get(&path).answer().await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.headers.contains_key("x-page"));
        let next = page
            .headers
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let link = page.header("link");
        seen.extend(iccids(&page.body));
        match next {
            Some(cursor) => {
                assert!(link.contains(&format!("after={cursor}>; rel=\"next\"")), "{link}");
                path = format!("/sims?{query}&page_size=4&after={cursor}");
            }
            None => return seen,
        }
    }
    panic!("no end to the list {query}");
}

/// Keyset pages list exactly what one big page lists, for every sort (nullable columns and
/// descending ones too) and with filters; cursors are checked.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn keyset_pages_list_every_sim_once_in_every_sort(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let sims = fleet(&pool).await;
    // Some SIMs seen, some twice at the same instant (ties broken by ICCID).
    for (n, sim) in sims.iter().enumerate().filter(|(n, _)| n % 3 != 0) {
        sqlx::query(
            "UPDATE sims SET last_seen_at = $2, msisdn = CASE WHEN $3 THEN NULL ELSE $4 END WHERE iccid = $1",
        )
        .bind(&sim.iccid)
        .bind(ts("2026-02-01T00:00:00Z") + Duration::minutes((n / 2) as i64))
        .bind(n % 4 == 0)
        .bind(format!("49170{:03}", 40 - n))
        .execute(&pool)
        .await
        .unwrap();
    }
    for column in [
        "iccid",
        "imsi",
        "msisdn",
        "label",
        "status",
        "registered_at",
        "updated_at",
        "last_seen_at",
    ] {
        for sort in [column.to_owned(), format!("-{column}")] {
            for filter in ["", "status=active,suspended&"] {
                let query = format!("{filter}sort={sort}");
                let whole = iccids(&app.get_json(&format!("/sims?{query}&page_size=500")).await);
                assert_eq!(walk_keyset(&app, &query).await, whole, "{query}");
            }
        }
    }

    // A cursor of another sort, a cursor this service did not write, page with after.
    let first = app.get("/sims?sort=label&page_size=2&after=").answer().await;
    let cursor = first.header("x-next-cursor");
    for (path, reason) in [
        (format!("/sims?sort=-label&after={cursor}"), "sort=label"),
        ("/sims?after=bm90IGEgY3Vyc29y".to_owned(), "not a cursor"),
        (
            format!("/sims?sort=label&page=2&after={cursor}"),
            "either page or after",
        ),
    ] {
        let Answer { status, body, .. } = app.get(&path).answer().await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["error"]["code"], "INVALID_QUERY", "{path}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
    // A cursor forged with a value that is no instant is refused, not sent to Postgres.
    let forged = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"s":"last_seen_at","v":"yesterday","i":"1"}"#)
    };
    let forged = app
        .get(&format!("/sims?sort=last_seen_at&after={forged}"))
        .response()
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}

/// Past `LIST_EXACT_COUNT_LIMIT` matches the total is the planner's estimate, said so, and
/// never below the limit + 1; at or under it, exact.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn totals_are_exact_up_to_the_limit_and_estimated_beyond(pool: PgPool) {
    let app = QueryApi::start_with(pool.clone(), |config| config.list_exact_count_limit = 12).await;
    let sims = fleet(&pool).await;
    sqlx::query("ANALYZE sims").execute(&pool).await.unwrap();

    let active = app.get("/sims?status=active").answer().await;
    assert_eq!(active.header("x-total-count"), "10");
    assert_eq!(active.header("x-total-count-exact"), "true");

    let page = app.get("/sims?page_size=5").answer().await;
    assert_eq!(page.header("x-total-count-exact"), "false");
    let estimate: i64 = page.header("x-total-count").parse().unwrap();
    assert!((13..=60).contains(&estimate), "{estimate}");
    let link = page.header("link");
    assert!(link.contains("rel=\"last\""), "{link}");
    assert_eq!(iccids(&page.body).len(), 5);

    // The SMS list counts the same way.
    let sms = app.get(&format!("/sims/{}/sms", sims[0].iccid)).answer().await;
    assert_eq!(sms.header("x-total-count-exact"), "true");
}

/// `LIST_TOTAL_CACHE_MS`: a filter's total is kept for that long (the page's rows are read
/// fresh every time), per filter; a read with a consistency token counts afresh.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn list_totals_are_kept_per_filter_for_a_short_while(pool: PgPool) {
    let app = QueryApi::start_with(pool.clone(), |config| {
        config.list_total_cache = std::time::Duration::from_millis(1500)
    })
    .await;
    let sims = fleet(&pool).await;
    let even = || app.get("/sims?tag=even&page_size=2");
    let five = || app.get("/sims?tag=five&page_size=2");
    let total = |answer: &Answer| answer.header("x-total-count").to_owned();
    assert_eq!(total(&even().answer().await), "15");
    assert_eq!(total(&five().answer().await), "6");

    // Five more SIMs tagged `even`, at the front of the list.
    for n in 0..5u32 {
        let mut sim = sim_row(100 + n);
        sim.iccid = format!("8988303000000000{n:03}");
        sim.tags = vec!["even".into()];
        insert_sim(&pool, &sim).await;
    }
    let kept = even().answer().await;
    assert_eq!(total(&kept), "15", "the total is kept");
    let rows = iccids(&kept.body);
    assert_eq!(rows[0], "8988303000000000000", "the rows are read fresh");
    // Another filter, or another sort of it, is counted on its own.
    let even_active = app.get("/sims?tag=even&status=active&page_size=2").answer().await;
    let expected = sims
        .iter()
        .filter(|s| s.status == SimStatus::Active && s.tags.contains(&"even".into()))
        .count()
        + 5 * usize::from(sim_row(100).status == SimStatus::Active);
    assert_eq!(total(&even_active), expected.to_string());
    // A consistency token (0, the start of the log: reached at once) counts afresh.
    let counted_afresh = app
        .get_consistent("/sims?tag=even&page_size=2", "0")
        .expect_answer(StatusCode::OK)
        .await;
    assert_eq!(total(&counted_afresh), "20");
    // Once old enough, counted again.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(total(&five().answer().await), "6");
    assert_eq!(total(&even().answer().await), "20");
}
