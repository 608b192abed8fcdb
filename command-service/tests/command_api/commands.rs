//! SIM, quota and SMS commands through the real HTTP API and the real event store.

use crate::common::{expect_error, iccid, with_luhn, CommandApi, Exchange};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::http::with_json;

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

/// The command API, an admin's token, and the SIM `iccid(n)`, registered.
async fn with_registered_sim(pool: PgPool, n: u32) -> (CommandApi, String, String) {
    let (app, token) = CommandApi::start_as_admin(pool).await;
    let sim = iccid(n);
    app.register_sim(&token, &sim).await;
    (app, token, sim)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn registering_a_sim_stores_sim_registered_with_metadata(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool.clone()).await;
    let register = app.post("/sims", &token).header("x-request-id", "req-register-1");
    let created = register
        .json(&json!({"iccid": "8988303000123456789", "imsi": "901405100000001",
                      "msisdn": "882285100000018", "label": "pump 7", "tags": ["site:a", "pumps"]}))
        .expect_answer(StatusCode::CREATED)
        .await;
    assert_eq!(created.header("location"), "/api/v1/sims/8988303000123456789");
    assert_eq!(created.header("etag"), "\"1\"");
    let answer = created.body;
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
    let (app, token) = CommandApi::start_as_admin(pool.clone()).await;
    let short = iccid(1);
    let long = with_luhn(&short);
    let last = long.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &long[..19], (last + 1) % 10);

    let register = |iccid: &str| {
        app.post("/sims", &token)
            .json(&json!({"iccid": iccid, "imsi": "901405100000001"}))
    };
    let refused = register(&wrong);
    let error = expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
    assert!(
        error["message"].as_str().unwrap().contains("check digit"),
        "{error}"
    );
    assert_eq!(app.count_events("SimRegistered").await, 0);

    let answer = register(&long).expect(StatusCode::CREATED).await;
    assert_eq!(answer["aggregate_id"], short.as_str(), "normalised to 19 digits");
    // The same SIM by its 20-digit name in a path.
    let relabel = |iccid: &str, label: &str| {
        app.patch(&format!("/sims/{iccid}"), &token)
            .json(&json!({"label": label}))
    };
    relabel(&long, "renamed").expect(StatusCode::OK).await;
    let bad_path = relabel(&wrong, "x");
    expect_error(bad_path, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_ICCID").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn invalid_identifiers_and_duplicates_are_refused(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool).await;
    let register = |body: Value| app.post("/sims", &token).json(&body);
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
        expect_error(register(body), StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    app.register_sim(&token, &iccid(2)).await;
    let again = register(json!({"iccid": iccid(2), "imsi": "901405100000001"}));
    expect_error(again, StatusCode::CONFLICT, "SIM_ALREADY_REGISTERED").await;
    let unknown = app.post(&format!("/sims/{}/activate", iccid(3)), &token);
    expect_error(unknown, StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn patch_changes_label_tags_and_imei_lock_together(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 4).await;
    let patch = |body: Value| app.patch(&format!("/sims/{sim}"), &token).json(&body);
    let answer = patch(json!({"label": "gate", "tags": ["north"], "imei_lock": true}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["version"], 5);
    let events = app.state.store.events_of("sim", &sim).await.unwrap();
    let types: Vec<&str> = events.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "SimRegistered",
            "SimLabelChanged",
            "SimTagsChanged",
            "ImeiLockChanged",
            // Label and IMEI lock are carried out at 1NCE, under the command's id.
            "ProviderUpdateRequested"
        ]
    );
    assert_eq!(events[4].payload["request_id"], answer["command_id"]);
    assert_eq!(events[4].payload["label"], "gate");

    // `label: null` clears it (and goes to 1NCE); the same values again change nothing.
    let cleared = patch(json!({"label": null, "tags": ["north"]}))
        .answer()
        .await
        .body;
    assert_eq!(cleared["version"], 7);
    let again = patch(json!({"label": null, "tags": ["north"]}))
        .answer()
        .await
        .body;
    assert_eq!(again["version"], 7);
    // Tags alone stay on the platform.
    let tagged = patch(json!({"tags": ["south"]})).answer().await.body;
    assert_eq!(tagged["version"], 8);
    expect_error(patch(json!({})), StatusCode::UNPROCESSABLE_ENTITY, "EMPTY_UPDATE").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_stale_if_match_answers_412_and_a_current_one_applies(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 5).await;
    let patch = |version: &str, label: &str| {
        let relabel = app
            .patch(&format!("/sims/{sim}"), &token)
            .json(&json!({"label": label}));
        relabel.header("if-match", version)
    };
    let current = patch("\"1\"", "first").expect_answer(StatusCode::OK).await;
    // The label changed and its provider update was requested: two events.
    assert_eq!(current.header("etag"), "\"3\"");
    let stale = patch("\"1\"", "second");
    let error = expect_error(stale, StatusCode::PRECONDITION_FAILED, "VERSION_MISMATCH").await;
    assert_eq!(error["details"]["current_version"], 3);
    let malformed = patch("one", "third");
    expect_error(malformed, StatusCode::BAD_REQUEST, "INVALID_IF_MATCH").await;

    // The connector confirming the label at 1NCE changes nothing the client edits: its
    // `If-Match` still holds.
    let request_id: uuid::Uuid = current.body["command_id"].as_str().unwrap().parse().unwrap();
    app.state
        .store
        .execute::<domain::Sim>(
            sim.as_str(),
            sim.as_str(),
            domain::SimCommand::ConfirmProviderUpdate {
                request_id,
                at: chrono::Utc::now(),
            },
            &eventstore::CommandContext::new(eventstore::EventMetadata::new("connector:sync")),
        )
        .await
        .unwrap();
    let after_settlement = patch("\"3\"", "fourth").expect_answer(StatusCode::OK).await;
    assert_eq!(after_settlement.header("etag"), "\"6\"");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body(pool: PgPool) {
    let (app, token) = CommandApi::start_as_admin(pool).await;
    let sim = iccid(6);
    let send = |label: &str| {
        let register = app.post("/sims", &token).header("idempotency-key", "register-6");
        register.json(&json!({"iccid": sim, "imsi": "901405100000001", "label": label}))
    };
    let first = send("a").expect_answer(StatusCode::CREATED).await;
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = send("a").expect_answer(StatusCode::CREATED).await;
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.body, first.body);
    assert_eq!(app.count_events("SimRegistered").await, 1);

    let other = send("b");
    expect_error(other, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(app.count_events("SimRegistered").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_same_key_ten_times_at_once_sends_one_sms(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 7).await;
    let requests = (0..10).map(|_| {
        let send = app
            .post(&format!("/sims/{sim}/sms"), &token)
            .header("idempotency-key", "sms-once");
        send.json(&json!({"payload": "hello"}))
            .expect(StatusCode::ACCEPTED)
    });
    let answers = futures::future::join_all(requests).await;
    assert!(answers.iter().all(|answer| answer == &answers[0]), "{answers:?}");
    assert_eq!(app.count_events("SmsSendRequested").await, 1);
}

/// 200 concurrent suspend requests for one SIM: exactly one suspension is requested; every
/// other request is refused with a conflict, none with a server error.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn two_hundred_concurrent_suspends_request_one_suspension(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 8).await;
    make_active(&app, &sim).await;
    let url = format!("/sims/{sim}/suspend");
    let requests = (0..200).map(|_| app.post(&url, &token).response());
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|response| response.status()).collect();
    let accepted = statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count();
    let conflicts = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!(accepted, 1, "{statuses:?}");
    assert_eq!(conflicts, 199, "{statuses:?}");
    assert_eq!(app.count_events("SuspensionRequested").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn activation_and_suspension_follow_the_lifecycle(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 9).await;
    let command = |action: &str| app.post(&format!("/sims/{sim}/{action}"), &token);
    expect_error(command("suspend"), StatusCode::CONFLICT, "SIM_NOT_ACTIVE").await;
    command("activate").expect(StatusCode::ACCEPTED).await;
    expect_error(command("activate"), StatusCode::CONFLICT, "CHANGE_PENDING").await;
    assert_eq!(app.count_events("ActivationRequested").await, 1);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_terminated_sim_refuses_every_command(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool, 10).await;
    app.delete(&format!("/sims/{sim}"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(app.count_events("SimTerminated").await, 1);

    // Every command, by its method, the path after the SIM's, and its body.
    let attempts = [
        (Method::POST, "/activate", None),
        (Method::PATCH, "", Some(json!({"label": "x"}))),
        (Method::POST, "/topup", None),
        (Method::POST, "/sms", Some(json!({"payload": "hi"}))),
        (Method::DELETE, "", None),
    ];
    for (method, rest, body) in attempts {
        let path = format!("/sims/{sim}{rest}");
        let attempt = with_json(app.request(method, &path, &token), body.as_ref());
        expect_error(attempt, StatusCode::GONE, "SIM_TERMINATED").await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_top_up_is_requested_once_until_the_provider_answers(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool.clone(), 11).await;
    let top_up = |sim: &str| app.post(&format!("/sims/{sim}/topup"), &token);
    let answer = top_up(&sim).expect(StatusCode::ACCEPTED).await;
    assert_eq!(answer["aggregate_id"], format!("{sim}:data"));
    expect_error(top_up(&sim), StatusCode::CONFLICT, "TOPUP_PENDING").await;
    let sms_quota = top_up(&sim).json(&json!({"quota": "sms", "payment_method": "invoice"}));
    sms_quota.expect(StatusCode::ACCEPTED).await;
    let (volume, iccid_column): (i64, String) =
        sqlx::query_as("SELECT (payload->>'volume')::bigint, iccid FROM events WHERE aggregate_id = $1")
            .bind(format!("{sim}:data"))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(volume, 500_000_000);
    assert_eq!(iccid_column, sim, "quota events carry their SIM's ICCID");
    let bad_kind = top_up(&sim).json(&json!({"quota": "voice"}));
    expect_error(bad_kind, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    expect_error(top_up(&iccid(99)), StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sms_payloads_are_validated(pool: PgPool) {
    let (app, token, sim) = with_registered_sim(pool.clone(), 12).await;
    let send = |payload: String| {
        app.post(&format!("/sims/{sim}/sms"), &token)
            .json(&json!({"payload": payload}))
    };
    for (payload, code) in [
        (String::new(), "SMS_PAYLOAD_EMPTY"),
        ("x".repeat(919), "SMS_PAYLOAD_TOO_LONG"),
    ] {
        expect_error(send(payload), StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let accepted = send("ü".repeat(71)).expect_answer(StatusCode::ACCEPTED).await;
    assert!(accepted
        .header("location")
        .ends_with(accepted.body["aggregate_id"].as_str().unwrap()));
    let (encoding, parts): (String, i64) = sqlx::query_as(
        "SELECT payload->>'encoding', (payload->>'parts')::bigint FROM events WHERE event_type = 'SmsSendRequested'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // ü is in the GSM 03.38 alphabet: 71 septets fit one GSM-7 part.
    assert_eq!((encoding.as_str(), parts), ("gsm7", 1));
    send("短".repeat(71)).expect(StatusCode::ACCEPTED).await;
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
