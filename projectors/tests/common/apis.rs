//! The command and query APIs in-process on random ports, on the test's database, with an
//! admin logged in: what an operator's client sees while the projectors run as processes.

use std::net::SocketAddr;
use std::time::Duration;

use readmodel::Cache;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

#[derive(Clone)]
pub struct Apis {
    pub commands: SocketAddr,
    pub queries: SocketAddr,
    pub token: String,
    pub client: Client,
}

impl Apis {
    /// Both APIs; the query API caches in `redis_url` under `redis_prefix` and waits at most
    /// `consistency_wait` for a consistency token.
    pub async fn start(
        pool: &PgPool,
        redis_url: &str,
        redis_prefix: &str,
        consistency_wait: Duration,
    ) -> Self {
        let command_config = command_service::Config::for_tests("postgres://unused");
        let command_state = command_service::AppState::new(&command_config, pool.clone()).unwrap();
        command_state
            .bootstrap_admin("admin", "admin-password-1")
            .await
            .unwrap();
        let commands = serve(command_service::router(command_state)).await;

        let mut query_config = query_service::Config::for_tests("postgres://unused");
        query_config.common.redis_url = redis_url.to_owned();
        query_config.redis_key_prefix = redis_prefix.to_owned();
        query_config.consistency_wait = consistency_wait;
        let cache = Cache::connect(query_config.cache_config()).await;
        let query_state = query_service::AppState::new(&query_config, pool.clone(), cache).unwrap();
        let queries = serve(query_service::router(query_state)).await;

        let client = Client::builder()
            .timeout(consistency_wait + Duration::from_secs(10))
            .build()
            .unwrap();
        let login: Value = client
            .post(format!("http://{commands}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": "admin-password-1"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("a token").to_owned();
        Self {
            commands,
            queries,
            token,
            client,
        }
    }

    /// A command; the status and the JSON answer (`{command_id, aggregate_id, version,
    /// position}` when accepted).
    pub async fn command(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("http://{}/api/v1{path}", self.commands))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A command with an `Idempotency-Key`: the status, or `None` when no answer came back
    /// (the connection failed).
    pub async fn keyed_command(
        &self,
        method: Method,
        path: &str,
        body: Value,
        key: &str,
    ) -> Option<(StatusCode, Value)> {
        let response = self
            .client
            .request(method, format!("http://{}/api/v1{path}", self.commands))
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .ok()?;
        let status = response.status();
        Some((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// `GET /ready` of both APIs: `true` when both answer 200.
    pub async fn ready(&self) -> bool {
        for addr in [self.commands, self.queries] {
            let ok = self
                .client
                .get(format!("http://{addr}/ready"))
                .timeout(Duration::from_secs(6))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                return false;
            }
        }
        true
    }

    /// A query, with `X-Consistency-Token` when `token` is given.
    pub async fn query(&self, path: &str, token: Option<i64>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .get(format!("http://{}/api/v1{path}", self.queries))
            .bearer_auth(&self.token);
        if let Some(position) = token {
            request = request.header("x-consistency-token", position.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
