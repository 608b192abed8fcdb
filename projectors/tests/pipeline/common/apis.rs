//! The command and query APIs in-process on random ports, on the test's database, with an
//! admin logged in: what an operator's client sees while the projectors run as processes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use testkit::{CommandApi, QueryApi};

#[derive(Clone)]
pub struct Apis {
    pub commands: SocketAddr,
    pub queries: SocketAddr,
    pub token: String,
    pub client: Client,
    /// Both services, running until the last clone goes.
    _running: Arc<(CommandApi, QueryApi)>,
}

impl Apis {
    /// Both APIs on their real start path; the query API caches in `redis_url` under
    /// `redis_prefix` and waits at most `consistency_wait` for a consistency token.
    pub async fn start(
        pool: &PgPool,
        redis_url: &str,
        redis_prefix: &str,
        consistency_wait: Duration,
    ) -> Self {
        let commands = CommandApi::start(pool.clone()).await;
        let queries = QueryApi::start_with(pool.clone(), |config| {
            config.common.redis_url = redis_url.to_owned();
            config.redis_key_prefix = redis_prefix.to_owned();
            config.consistency_wait = consistency_wait;
        })
        .await;
        let token = commands.admin_token().await;
        let client = Client::builder()
            .timeout(consistency_wait + Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            commands: commands.addr,
            queries: queries.addr,
            token,
            client,
            _running: Arc::new((commands, queries)),
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
