//! The two APIs started in the test's process on their real start path (`App::build` on the
//! test's own database, a free port, then `run_until_stopped`), with clients for them.

use std::net::SocketAddr;

use platform::Role;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::http::Exchange;
use crate::running::Running;

/// The bootstrap admin every [`CommandApi`] starts with.
pub const ADMIN: (&str, &str) = ("admin", "admin-password-1");

/// The command API on the test's database, with the bootstrap admin [`ADMIN`].
pub struct CommandApi {
    pub addr: SocketAddr,
    pub client: Client,
    pub pool: PgPool,
    pub state: command_service::AppState,
    pub running: Running,
}

impl CommandApi {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, |_| {}).await
    }

    /// [`CommandApi::start`], and an access token of the bootstrap admin's.
    pub async fn start_as_admin(pool: PgPool) -> (Self, String) {
        let app = Self::start(pool).await;
        let token = app.admin_token().await;
        (app, token)
    }

    /// With the test's changes to the configuration (applied last).
    pub async fn start_with(pool: PgPool, configure: impl FnOnce(&mut command_service::Config)) -> Self {
        let mut config = command_service::Config::for_tests(&crate::database_url(&pool).await);
        config.addr = "127.0.0.1:0".parse().expect("literal address");
        config.bootstrap_admin = Some((ADMIN.0.to_owned(), ADMIN.1.to_owned()));
        configure(&mut config);
        let app = command_service::App::build(config)
            .await
            .expect("the command API starts");
        let addr = app.addr();
        let state = app.state().clone();
        let running = Running::spawn(addr, |shutdown| app.run_until_stopped(shutdown));
        Self {
            addr,
            client: Client::new(),
            pool,
            state,
            running,
        }
    }

    pub fn url(&self, path: &str) -> String {
        url(self.addr, path)
    }

    /// `path` under `/api/v1`.
    pub fn api(&self, path: &str) -> String {
        api_url(self.addr, path)
    }

    /// A login with these credentials, not yet sent.
    pub fn login_request(&self, username: &str, password: &str) -> RequestBuilder {
        self.anonymous(Method::POST, "/auth/login")
            .json(&json!({"username": username, "password": password}))
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let response = self.login_request(username, password).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "login of {username}");
        response.json().await.unwrap()
    }

    /// A refresh with `refresh_token` (any JSON value, to try the wrong ones), not yet sent.
    pub fn refresh_request(&self, refresh_token: &Value) -> RequestBuilder {
        self.anonymous(Method::POST, "/auth/refresh")
            .json(&json!({"refresh_token": refresh_token}))
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN.0, ADMIN.1).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a user with `role` through the API and returns an access token of theirs.
    pub async fn token_for_role(&self, role: &str) -> String {
        let admin = self.admin_token().await;
        let username = format!("{role}-user");
        let password = "correct-horse-battery";
        self.post("/users", &admin)
            .json(&json!({"username": username, "password": password, "role": role}))
            .expect(StatusCode::CREATED)
            .await;
        self.login(&username, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `method path` under `/api/v1` with `token` as the bearer.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.anonymous(method, path).bearer_auth(token)
    }

    /// `method path` under `/api/v1` without credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.api(path))
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
        self.post("/sims", token)
            .json(&json!({"iccid": iccid, "imsi": "901405100000001", "label": "test"}))
            .expect(StatusCode::CREATED)
            .await
    }

    pub async fn count_events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// How many rows each of `tables` holds (what refused requests must leave as it was).
    pub async fn count_rows(&self, tables: &[&str]) -> Vec<i64> {
        count_rows(&self.pool, tables).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        text(&self.client, self.url("/metrics")).await
    }
}

/// The query API on the test's database, with a Redis key prefix of its own and a viewer's
/// token.
pub struct QueryApi {
    pub addr: SocketAddr,
    pub client: Client,
    pub pool: PgPool,
    pub state: query_service::AppState,
    pub config: query_service::Config,
    /// A viewer's access token.
    pub token: String,
    pub running: Running,
}

impl QueryApi {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, |_| {}).await
    }

    /// With the test's changes to the configuration (applied last).
    pub async fn start_with(pool: PgPool, configure: impl FnOnce(&mut query_service::Config)) -> Self {
        let mut config = query_service::Config::for_tests(&crate::database_url(&pool).await);
        configure(&mut config);
        let app = query_service::App::build(config.clone())
            .await
            .expect("the query API starts");
        let addr = app.addr();
        let state = app.state().clone();
        let token = viewer_token(&state);
        let running = Running::spawn(addr, |shutdown| app.run_until_stopped(shutdown));
        Self {
            addr,
            client: Client::new(),
            pool,
            state,
            config,
            token,
            running,
        }
    }

    /// A GET under `/api/v1` as the viewer.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.api(path)).bearer_auth(&self.token)
    }

    /// [`QueryApi::get`] with a consistency token (`X-Consistency-Token`).
    pub fn get_consistent(&self, path: &str, consistency_token: &str) -> RequestBuilder {
        self.get(path).header("x-consistency-token", consistency_token)
    }

    /// A GET under `/api/v1` without credentials.
    pub fn anonymous(&self, path: &str) -> RequestBuilder {
        self.client.get(self.api(path))
    }

    /// [`QueryApi::get`], answered 200, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).expect(StatusCode::OK).await
    }

    pub fn url(&self, path: &str) -> String {
        url(self.addr, path)
    }

    /// `path` under `/api/v1`.
    pub fn api(&self, path: &str) -> String {
        api_url(self.addr, path)
    }

    pub fn store(&self) -> eventstore::EventStore {
        eventstore::EventStore::new(self.pool.clone())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        text(&self.client, self.url("/metrics")).await
    }

    /// How many rows each of `tables` holds (what refused requests must leave as it was).
    pub async fn count_rows(&self, tables: &[&str]) -> Vec<i64> {
        count_rows(&self.pool, tables).await
    }
}

/// `path` on the API at `addr`.
fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// `path` under `/api/v1` on the API at `addr`.
fn api_url(addr: SocketAddr, path: &str) -> String {
    url(addr, &format!("/api/v1{path}"))
}

/// The body of a GET of `url`, as text.
async fn text(client: &Client, url: String) -> String {
    client.get(url).response().await.text().await.unwrap()
}

/// How many rows each of `tables` holds, in their order.
async fn count_rows(pool: &PgPool, tables: &[&str]) -> Vec<i64> {
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        let count = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push(count);
    }
    counts
}

/// A viewer's access token for the query API (JWTs need no database row).
pub fn viewer_token(state: &query_service::AppState) -> String {
    state
        .authenticator
        .jwt
        .issue_access(uuid::Uuid::new_v4(), "viewer-user", Role::Viewer)
        .unwrap()
        .token
}
