//! What the suites share: the query API on its real start path (`testkit::QueryApi`), read-model
//! rows written as the projectors would, events stored through the event store.

pub use testkit::{error_body, iccid, with_luhn, QueryApi};

use chrono::{DateTime, Utc};
use domain::ids::{quota_aggregate_id, Iccid, Imsi, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata, EventStore};
use readmodel::SimView;
use sqlx::PgPool;

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
    store
        .execute::<Sim>(iccid, iccid, command, &context("user:op", "req-register"))
        .await
        .unwrap()
        .answer()
        .position
}

/// What the connector records when 1NCE reports the SIM enabled (→ active).
pub async fn provider_enabled(store: &EventStore, iccid: &str, at: DateTime<Utc>) -> i64 {
    let command = SimCommand::RecordProviderStatus {
        status: ProviderStatus::Enabled,
        at,
    };
    store
        .execute::<Sim>(iccid, iccid, command, &context("connector:sync", "req-provider"))
        .await
        .unwrap()
        .answer()
        .position
}

/// The provider's data quota.
pub async fn assign_data_quota(store: &EventStore, iccid: &str, total: u64, remaining: u64) -> i64 {
    let parsed = Iccid::parse(iccid).unwrap();
    let command = QuotaCommand::Assign {
        iccid: parsed.clone(),
        kind: QuotaKind::Data,
        total,
        remaining,
        expiry_date: Some(ts("2026-12-31T00:00:00Z")),
        at: Utc::now(),
    };
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
