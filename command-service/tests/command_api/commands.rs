//! SIM, quota and SMS commands through the real HTTP API and the real event store.

use crate::common::{error_body, iccid, with_luhn, CommandApi};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

/// What the sync connector will do once the provider confirms: make the SIM active.
async fn make_active(app: &CommandApi, iccid: &str) {
    let ctx = CommandContext::new(EventMetadata::new("connector:test"));
    let command = SimCommand::RecordProviderStatus {
        status: ProviderStatus::Enabled,
        at: chrono::Utc::now(),
    };
    app.state
        .store
        .execute::<Sim>(iccid, iccid, command, &ctx)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn registering_a_sim_stores_sim_registered_with_metadata(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let token = app.admin_token().await;
    let response = app
        .post("/sims", &token)
        .header("x-request-id", "req-register-1")
        .json(&json!({"iccid": "8988303000123456789", "imsi": "901405100000001",
                      "msisdn": "882285100000018", "label": "pump 7", "tags": ["site:a", "pumps"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/v1/sims/8988303000123456789");
    assert_eq!(response.headers()["etag"], "\"1\"");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["aggregate_id"], "8988303000123456789");
    assert_eq!(answer["version"], 1);
    assert!(answer["position"].as_i64().unwrap() > 0);

    let (event_type, aggregate_type, payload, metadata, position): (String, String, Value, Value, i64) =
        sqlx::query_as("SELECT event_type, aggregate_type, payload, metadata, position FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(event_type, "SimRegistered");
    assert_eq!(aggregate_type, "sim");
    assert_eq!(position, answer["position"].as_i64().unwrap());
    assert_eq!(payload["iccid"], "8988303000123456789");
    assert_eq!(payload["msisdn"], "882285100000018");
    assert_eq!(payload["tags"], json!(["pumps", "site:a"]));
    assert_eq!(metadata["actor"], "user:admin");
    assert_eq!(metadata["command_id"], answer["command_id"]);
    assert_eq!(metadata["request_id"], "req-register-1");
    for field in ["correlation_id", "causation_id", "occurred_at"] {
        assert!(metadata[field].is_string(), "metadata.{field}: {metadata}");
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn twenty_digit_iccids_need_the_right_check_digit(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let token = app.admin_token().await;
    let short = iccid(1);
    let long = with_luhn(&short);
    let last = long.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &long[..19], (last + 1) % 10);

    let refused = app
        .post("/sims", &token)
        .json(&json!({"iccid": wrong, "imsi": "901405100000001"}))
        .send()
        .await
        .unwrap();
    let error = error_body(refused, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
    assert!(
        error["message"].as_str().unwrap().contains("check digit"),
        "{error}"
    );
    assert_eq!(app.count_events("SimRegistered").await, 0);

    let accepted = app
        .post("/sims", &token)
        .json(&json!({"iccid": long, "imsi": "901405100000001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!(answer["aggregate_id"], short.as_str(), "normalised to 19 digits");
    // The same SIM by its 20-digit name in a path.
    let patched = app
        .patch(&format!("/sims/{long}"), &token)
        .json(&json!({"label": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let bad_path = app
        .patch(&format!("/sims/{wrong}"), &token)
        .json(&json!({"label": "x"}))
        .send()
        .await
        .unwrap();
    error_body(bad_path, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn invalid_identifiers_and_duplicates_are_refused(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let register = |body: Value| app.post("/sims", &token).json(&body).send();
    let cases = [
        (
            json!({"iccid": "12345", "imsi": "901405100000001"}),
            "INVALID_ICCID",
        ),
        (json!({"iccid": iccid(2), "imsi": "90140510000"}), "INVALID_IMSI"),
        (
            json!({"iccid": iccid(2), "imsi": "901405100000001", "msisdn": "+4917"}),
            "INVALID_MSISDN",
        ),
        (
            json!({"iccid": iccid(2), "imsi": "901405100000001", "tags": ["has space"]}),
            "INVALID_TAGS",
        ),
    ];
    for (body, code) in cases {
        error_body(
            register(body).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    app.register_sim(&token, &iccid(2)).await;
    let again = register(json!({"iccid": iccid(2), "imsi": "901405100000001"}))
        .await
        .unwrap();
    error_body(again, StatusCode::CONFLICT, "SIM_ALREADY_REGISTERED").await;
    let unknown = app
        .post(&format!("/sims/{}/activate", iccid(3)), &token)
        .send()
        .await
        .unwrap();
    error_body(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn patch_changes_label_tags_and_imei_lock_together(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let token = app.admin_token().await;
    let sim = iccid(4);
    app.register_sim(&token, &sim).await;
    let response = app
        .patch(&format!("/sims/{sim}"), &token)
        .json(&json!({"label": "gate", "tags": ["north"], "imei_lock": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["version"], 4);
    let types: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(&sim)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        types,
        [
            "SimRegistered",
            "SimLabelChanged",
            "SimTagsChanged",
            "ImeiLockChanged"
        ]
    );

    // `label: null` clears it; the same values again change nothing.
    let cleared = app
        .patch(&format!("/sims/{sim}"), &token)
        .json(&json!({"label": null, "tags": ["north"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.json::<Value>().await.unwrap()["version"], 5);
    let empty = app
        .patch(&format!("/sims/{sim}"), &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    error_body(empty, StatusCode::UNPROCESSABLE_ENTITY, "EMPTY_UPDATE").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_stale_if_match_answers_412_and_a_current_one_applies(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(5);
    app.register_sim(&token, &sim).await;
    let patch = |version: &str, label: &str| {
        app.patch(&format!("/sims/{sim}"), &token)
            .header("if-match", version)
            .json(&json!({"label": label}))
            .send()
    };
    let current = patch("\"1\"", "first").await.unwrap();
    assert_eq!(current.status(), StatusCode::OK);
    assert_eq!(current.headers()["etag"], "\"2\"");
    let stale = patch("\"1\"", "second").await.unwrap();
    let error = error_body(stale, StatusCode::PRECONDITION_FAILED, "VERSION_MISMATCH").await;
    assert_eq!(error["details"]["current_version"], 2);
    let malformed = patch("one", "third").await.unwrap();
    error_body(malformed, StatusCode::BAD_REQUEST, "INVALID_IF_MATCH").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(6);
    let send = |label: &str| {
        app.post("/sims", &token)
            .header("idempotency-key", "register-6")
            .json(&json!({"iccid": sim, "imsi": "901405100000001", "label": label}))
            .send()
    };
    let first = send("a").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = send("a").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count_events("SimRegistered").await, 1);

    let other = send("b").await.unwrap();
    error_body(other, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(app.count_events("SimRegistered").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_same_key_ten_times_at_once_sends_one_sms(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(7);
    app.register_sim(&token, &sim).await;
    let requests = (0..10).map(|_| {
        app.post(&format!("/sims/{sim}/sms"), &token)
            .header("idempotency-key", "sms-once")
            .json(&json!({"payload": "hello"}))
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut answers = Vec::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert!(answers.iter().all(|answer| answer == &answers[0]), "{answers:?}");
    assert_eq!(app.count_events("SmsSendRequested").await, 1);
}

/// 200 concurrent suspend requests for one SIM: exactly one suspension is requested; every
/// other request is refused with a conflict, none with a server error.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn two_hundred_concurrent_suspends_request_one_suspension(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(8);
    app.register_sim(&token, &sim).await;
    make_active(&app, &sim).await;
    let url = format!("/sims/{sim}/suspend");
    let requests = (0..200).map(|_| app.post(&url, &token).send());
    let statuses: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|response| response.unwrap().status())
        .collect();
    let accepted = statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count();
    let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert_eq!(conflicts, 199, "{statuses:?}");
    assert_eq!(app.count_events("SuspensionRequested").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn activation_and_suspension_follow_the_lifecycle(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(9);
    app.register_sim(&token, &sim).await;
    let suspend_inactive = app
        .post(&format!("/sims/{sim}/suspend"), &token)
        .send()
        .await
        .unwrap();
    error_body(suspend_inactive, StatusCode::CONFLICT, "SIM_NOT_ACTIVE").await;
    let activated = app
        .post(&format!("/sims/{sim}/activate"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), StatusCode::ACCEPTED);
    let again = app
        .post(&format!("/sims/{sim}/activate"), &token)
        .send()
        .await
        .unwrap();
    error_body(again, StatusCode::CONFLICT, "CHANGE_PENDING").await;
    assert_eq!(app.count_events("ActivationRequested").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_terminated_sim_refuses_every_command(pool: PgPool) {
    let app = CommandApi::start(pool).await;
    let token = app.admin_token().await;
    let sim = iccid(10);
    app.register_sim(&token, &sim).await;
    let terminated = app.delete(&format!("/sims/{sim}"), &token).send().await.unwrap();
    assert_eq!(terminated.status(), StatusCode::OK);
    assert_eq!(app.count_events("SimTerminated").await, 1);

    let attempts = [
        app.post(&format!("/sims/{sim}/activate"), &token)
            .send()
            .await
            .unwrap(),
        app.patch(&format!("/sims/{sim}"), &token)
            .json(&json!({"label": "x"}))
            .send()
            .await
            .unwrap(),
        app.post(&format!("/sims/{sim}/topup"), &token)
            .send()
            .await
            .unwrap(),
        app.post(&format!("/sims/{sim}/sms"), &token)
            .json(&json!({"payload": "hi"}))
            .send()
            .await
            .unwrap(),
        app.delete(&format!("/sims/{sim}"), &token).send().await.unwrap(),
    ];
    for response in attempts {
        error_body(response, StatusCode::GONE, "SIM_TERMINATED").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_top_up_is_requested_once_until_the_provider_answers(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let token = app.admin_token().await;
    let sim = iccid(11);
    app.register_sim(&token, &sim).await;
    let first = app
        .post(&format!("/sims/{sim}/topup"), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let answer: Value = first.json().await.unwrap();
    assert_eq!(answer["aggregate_id"], format!("{sim}:data"));
    let pending = app
        .post(&format!("/sims/{sim}/topup"), &token)
        .send()
        .await
        .unwrap();
    error_body(pending, StatusCode::CONFLICT, "TOPUP_PENDING").await;
    let sms_quota = app
        .post(&format!("/sims/{sim}/topup"), &token)
        .json(&json!({"quota": "sms", "payment_method": "invoice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sms_quota.status(), StatusCode::ACCEPTED);
    let (volume, iccid_column): (i64, String) =
        sqlx::query_as("SELECT (payload->>'volume')::bigint, iccid FROM events WHERE aggregate_id = $1")
            .bind(format!("{sim}:data"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(volume, 500_000_000);
    assert_eq!(iccid_column, sim, "quota events carry their SIM's ICCID");
    let bad_kind = app
        .post(&format!("/sims/{sim}/topup"), &token)
        .json(&json!({"quota": "voice"}))
        .send()
        .await
        .unwrap();
    error_body(bad_kind, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    let unknown_sim = app
        .post(&format!("/sims/{}/topup", iccid(99)), &token)
        .send()
        .await
        .unwrap();
    error_body(unknown_sim, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sms_payloads_are_validated(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let token = app.admin_token().await;
    let sim = iccid(12);
    app.register_sim(&token, &sim).await;
    let send = |payload: String| {
        app.post(&format!("/sims/{sim}/sms"), &token)
            .json(&json!({"payload": payload}))
            .send()
    };
    error_body(
        send(String::new()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "SMS_PAYLOAD_EMPTY",
    )
    .await;
    error_body(
        send("x".repeat(919)).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "SMS_PAYLOAD_TOO_LONG",
    )
    .await;
    let accepted = send("ü".repeat(71)).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let answer: Value = accepted.json().await.unwrap();
    assert!(location.ends_with(answer["aggregate_id"].as_str().unwrap()));
    let (encoding, parts): (String, i64) = sqlx::query_as(
        "SELECT payload->>'encoding', (payload->>'parts')::bigint FROM events WHERE event_type = 'SmsSendRequested'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // ü is in the GSM 03.38 alphabet: 71 septets fit one GSM-7 part.
    assert_eq!((encoding.as_str(), parts), ("gsm7", 1));
    let chinese = send("短".repeat(71)).await.unwrap();
    assert_eq!(chinese.status(), StatusCode::ACCEPTED);
    let parts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT payload->>'encoding', (payload->>'parts')::bigint FROM events \
         WHERE event_type = 'SmsSendRequested' ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // UCS-2: 70 characters in one part, 67 per part beyond.
    assert_eq!(parts[1], ("ucs2".to_owned(), 2));
}
