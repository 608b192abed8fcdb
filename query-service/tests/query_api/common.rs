//! What the suites share: the query API on its real start path (`testkit::QueryApi`), read-model
//! rows written as the projectors would, events stored through the event store.

pub use testkit::http::{expect_error, Exchange};
pub use testkit::{error_body, iccid, with_luhn, QueryApi};

use chrono::{DateTime, Utc};
use domain::ids::{quota_aggregate_id, Iccid, Imsi, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata, EventStore};
use readmodel::SimView;
use reqwest::StatusCode;
use sqlx::PgPool;

/// Each of `paths` is refused with 400 `INVALID_QUERY`, in the error shape.
pub async fn expect_invalid_queries(app: &QueryApi, paths: impl IntoIterator<Item = impl AsRef<str>>) {
    for path in paths {
        expect_error(app.get(path.as_ref()), StatusCode::BAD_REQUEST, "INVALID_QUERY").await;
    }
}

/// The ICCIDs of a list's page, in order.
pub fn iccids(body: &serde_json::Value) -> Vec<String> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap().to_owned())
        .collect()
}

pub fn ts(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A `sims` row with every optional field empty.
pub fn sim_row(n: u32) -> SimView {
    SimView {
        version: 1,
        last_position: n as i64,
        ..SimView::registered(iccid(n), format!("90140510000{n:04}"), ts("2026-01-01T00:00:00Z"))
    }
}

/// Writes a `sims` row as the projectors do.
pub async fn insert_sim(pool: &PgPool, sim: &SimView) {
    let mut conn = pool.acquire().await.unwrap();
    readmodel::sims::upsert_sims(&mut conn, &[sim]).await.unwrap();
}

pub fn context(actor: &str, request_id: &str) -> CommandContext {
    let mut metadata = EventMetadata::new(actor);
    metadata.request_id = Some(request_id.to_owned());
    CommandContext::new(metadata)
}

/// Stores `SimRegistered` through the event store; returns its position.
pub async fn register(store: &EventStore, iccid: &str, label: &str, at: DateTime<Utc>) -> i64 {
    let command = SimCommand::Register {
        iccid: Iccid::parse(iccid).unwrap(),
        imsi: Imsi::parse("901405100000001").unwrap(),
        msisdn: None,
        label: Some(label.to_owned()),
        tags: vec!["site:a".into()],
        at,
    };
    execute_sim(store, iccid, command, context("user:op", "req-register")).await
}

/// What the connector records when 1NCE reports the SIM enabled (→ active).
pub async fn provider_enabled(store: &EventStore, iccid: &str, at: DateTime<Utc>) -> i64 {
    let command = SimCommand::RecordProviderStatus {
        status: ProviderStatus::Enabled,
        at,
    };
    execute_sim(store, iccid, command, context("connector:sync", "req-provider")).await
}

/// Runs `command` on the SIM; returns the position of what it stored.
pub async fn execute_sim(store: &EventStore, iccid: &str, command: SimCommand, ctx: CommandContext) -> i64 {
    let outcome = store.execute::<Sim>(iccid, iccid, command, &ctx).await.unwrap();
    outcome.answer().position
}

/// The provider's data quota.
pub async fn assign_data_quota(store: &EventStore, iccid: &str, total: u64, remaining: u64) -> i64 {
    let command = QuotaCommand::Assign {
        iccid: Iccid::parse(iccid).unwrap(),
        kind: QuotaKind::Data,
        total,
        remaining,
        expiry_date: Some(ts("2026-12-31T00:00:00Z")),
        at: Utc::now(),
    };
    execute_data_quota(store, iccid, command).await
}

/// What the connector records when 1NCE reports what is left of the data quota.
pub async fn data_consumed(store: &EventStore, iccid: &str, remaining: u64) -> i64 {
    let command = QuotaCommand::RecordConsumption {
        remaining,
        at: Utc::now(),
    };
    execute_data_quota(store, iccid, command).await
}

pub async fn execute_data_quota(store: &EventStore, iccid: &str, command: QuotaCommand) -> i64 {
    let parsed = Iccid::parse(iccid).unwrap();
    store
        .execute::<Quota>(
            &quota_aggregate_id(&parsed, QuotaKind::Data),
            iccid,
            command,
            &context("connector:sync", "req-quota"),
        )
        .await
        .unwrap()
        .answer()
        .position
}

/// Inserts usage as the projector would: into `sim_usage` always, and into the rollups when
/// they are tables (without TimescaleDB).
pub async fn insert_usage(pool: &PgPool, iccid: &str, at: &str, data_bytes: i64, sms_mo: i64) {
    let at = ts(at);
    // Every statement takes the same parameters: $1 ICCID, $2 instant, $3 bytes, $4 SMS MO.
    let mut statements = vec![
        "INSERT INTO sim_usage (iccid, observed_at, position, data_bytes, sms_mo, sms_mt) VALUES ($1, $2, 1, $3, $4, 0)"
            .to_owned(),
    ];
    for (table, unit) in [("sim_usage_hourly", "hour"), ("sim_usage_daily", "day")] {
        let is_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = $1 AND table_type = 'BASE TABLE')",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap();
        if is_table {
            statements.push(format!(
                "INSERT INTO {table} (iccid, bucket, data_bytes, sms_mo, sms_mt) \
                 VALUES ($1, date_trunc('{unit}', $2 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', $3, $4, 0) \
                 ON CONFLICT (iccid, bucket) DO UPDATE SET data_bytes = {table}.data_bytes + $3, \
                 sms_mo = {table}.sms_mo + $4"
            ));
            let fleet = table.replacen("sim_", "fleet_", 1);
            statements.push(format!(
                "INSERT INTO {fleet} (bucket, data_bytes, sms_mo, sms_mt) \
                 VALUES (date_trunc('{unit}', $2 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', $3, $4, 0) \
                 ON CONFLICT (bucket) DO UPDATE SET data_bytes = {fleet}.data_bytes + $3, \
                 sms_mo = {fleet}.sms_mo + $4"
            ));
        }
    }
    for statement in statements {
        sqlx::query(&statement)
            .bind(iccid)
            .bind(at)
            .bind(data_bytes)
            .bind(sms_mo)
            .execute(pool)
            .await
            .unwrap();
    }
}
