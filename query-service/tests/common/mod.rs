//! Starts the real query API in-process on a random port, on the test's own database, with a
//! Redis key prefix of its own.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use domain::ids::{quota_aggregate_id, Iccid, Imsi, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use domain::sim::{ProviderStatus, Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata, EventStore};
use platform::Role;
use query_service::{AppState, Config};
use readmodel::{Cache, SimView, SIM_COLUMNS};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use std::net::SocketAddr;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub pool: PgPool,
    pub state: AppState,
    pub config: Config,
    pub token: String,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests("postgres://unused");
        configure(&mut config);
        let cache = Cache::connect(config.cache_config()).await;
        let state = AppState::new(&config, pool.clone(), cache).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = query_service::router(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let token = viewer_token(&state);
        Self {
            addr,
            client: Client::new(),
            pool,
            state,
            config,
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v1{path}"))
    }

    /// A GET as a viewer.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.api(path)).bearer_auth(&self.token)
    }

    /// GET, expect 200, return the body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub fn store(&self) -> EventStore {
        EventStore::new(self.pool.clone())
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A viewer's access token (JWTs need no database row).
pub fn viewer_token(state: &AppState) -> String {
    state
        .authenticator
        .jwt
        .issue_access(uuid::Uuid::new_v4(), "viewer-user", Role::Viewer)
        .unwrap()
        .token
}

/// A valid 19-digit ICCID, distinct per `n`.
pub fn iccid(n: u32) -> String {
    format!("89883030001{n:08}")
}

/// The 20-digit form of a 19-digit ICCID, with its Luhn check digit.
pub fn with_luhn(iccid19: &str) -> String {
    Iccid::parse(iccid19).unwrap().with_luhn()
}

pub fn ts(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A `sims` row with every optional field empty.
pub fn sim_row(n: u32) -> SimView {
    let at = ts("2026-01-01T00:00:00Z");
    SimView {
        iccid: iccid(n),
        imsi: format!("90140510000{n:04}"),
        msisdn: None,
        label: None,
        tags: vec![],
        status: "inactive".into(),
        pending_change: None,
        provider_status: None,
        imei: None,
        imei_lock: false,
        ip_address: None,
        network: None,
        country: None,
        rat: None,
        last_seen_at: None,
        data_total: None,
        data_remaining: None,
        data_expiry: None,
        sms_total: None,
        sms_remaining: None,
        sms_expiry: None,
        registered_at: at,
        terminated_at: None,
        version: 1,
        last_position: n as i64,
        updated_at: at,
        projection: "complete".to_owned(),
    }
}

/// Writes a `sims` row as the projectors would.
pub async fn insert_sim(pool: &PgPool, sim: &SimView) {
    let placeholders: Vec<String> = (1..=27).map(|i| format!("${i}")).collect();
    sqlx::query(&format!(
        "INSERT INTO sims ({SIM_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    ))
    .bind(&sim.iccid)
    .bind(&sim.imsi)
    .bind(&sim.msisdn)
    .bind(&sim.label)
    .bind(&sim.tags)
    .bind(&sim.status)
    .bind(&sim.pending_change)
    .bind(&sim.provider_status)
    .bind(&sim.imei)
    .bind(sim.imei_lock)
    .bind(&sim.ip_address)
    .bind(&sim.network)
    .bind(&sim.country)
    .bind(&sim.rat)
    .bind(sim.last_seen_at)
    .bind(sim.data_total)
    .bind(sim.data_remaining)
    .bind(sim.data_expiry)
    .bind(sim.sms_total)
    .bind(sim.sms_remaining)
    .bind(sim.sms_expiry)
    .bind(sim.registered_at)
    .bind(sim.terminated_at)
    .bind(sim.version)
    .bind(sim.last_position)
    .bind(sim.updated_at)
    .bind(&sim.projection)
    .execute(pool)
    .await
    .unwrap();
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

/// Reads an error answer and checks the contract's shape; returns the error object.
pub async fn error_body(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for {code}");
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id on every answer")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    assert_eq!(error["code"], code, "body: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(error["details"].is_object(), "body: {body}");
    assert_eq!(error["request_id"], request_id.as_str(), "body: {body}");
    error.clone()
}
