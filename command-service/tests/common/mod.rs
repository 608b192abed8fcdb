//! Starts the real command API in-process on a random port, on the test's own database.
#![allow(dead_code)]

use std::net::SocketAddr;

use command_service::{AppState, Config};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

pub const ADMIN: (&str, &str) = ("admin", "admin-password-1");

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub pool: PgPool,
    pub state: AppState,
}

impl TestApp {
    /// Serves the command API with a bootstrap admin.
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_tests("postgres://unused");
        configure(&mut config);
        let state = AppState::new(&config, pool.clone()).expect("state");
        state
            .bootstrap_admin(ADMIN.0, ADMIN.1)
            .await
            .expect("bootstrap admin");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = command_service::router(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            addr,
            client: Client::new(),
            pool,
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v1{path}"))
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .client
            .post(self.api("/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "login of {username}");
        response.json().await.unwrap()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN.0, ADMIN.1).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a user with `role` and returns an access token of theirs.
    pub async fn token_for_role(&self, role: &str) -> String {
        let admin = self.admin_token().await;
        let username = format!("{role}-user");
        let password = "correct-horse-battery";
        let created = self
            .client
            .post(self.api("/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": username, "password": password, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        self.login(&username, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn post(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.post(self.api(path)).bearer_auth(token)
    }

    pub fn patch(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.patch(self.api(path)).bearer_auth(token)
    }

    pub fn delete(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.delete(self.api(path)).bearer_auth(token)
    }

    pub fn get(&self, path: &str, token: &str) -> RequestBuilder {
        self.client.get(self.api(path)).bearer_auth(token)
    }

    /// Registers a SIM and returns the answer.
    pub async fn register_sim(&self, token: &str, iccid: &str) -> Value {
        let response = self
            .post("/sims", token)
            .json(&json!({"iccid": iccid, "imsi": "901405100000001", "label": "test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "register {iccid}");
        response.json().await.unwrap()
    }

    pub async fn count_events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
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

/// A valid 19-digit ICCID, distinct per `n`.
pub fn iccid(n: u32) -> String {
    format!("89883030001{n:08}")
}

/// The 20-digit form of a 19-digit ICCID, with its Luhn check digit.
pub fn with_luhn(iccid19: &str) -> String {
    let digits: Vec<u32> = iccid19.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let mut sum = 0;
    for (i, digit) in digits.iter().rev().enumerate() {
        let mut d = *digit;
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    format!("{iccid19}{}", (10 - sum % 10) % 10)
}
