//! The API-key and bearer paths of the `Authenticator`, and the `db` helpers, against a
//! throwaway database on the local Postgres (trust auth).

use axum::extract::FromRef;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::get;
use axum::Router;
use chrono::{Duration as ChronoDuration, Utc};
use platform::auth::{generate_api_key, Authenticator, JwtKeys, NewApiKey, PrincipalKind, Role};
use platform::{db, Principal};
use serde_json::Value;
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

struct TestDb {
    url: String,
    pool: PgPool,
}

impl TestDb {
    async fn new() -> Self {
        let url = format!("{SERVER}/platform_test_{}", Uuid::new_v4().simple());
        db::create_database_if_missing(&url).await.unwrap();
        db::create_database_if_missing(&url).await.unwrap(); // idempotent
        let pool = db::connect(&url, 4).await.unwrap();
        sqlx::query(
            "CREATE TABLE api_keys(id uuid primary key, name text not null, prefix text not null,
             key_hash text not null unique, role text not null, created_by uuid,
             created_at timestamptz not null default now(), expires_at timestamptz,
             revoked_at timestamptz, last_used_at timestamptz)",
        )
        .execute(&pool)
        .await
        .unwrap();
        // What authentication re-reads about an access token's user.
        sqlx::query("CREATE TABLE users(id uuid primary key, role text not null, disabled boolean not null)")
            .execute(&pool)
            .await
            .unwrap();
        Self { url, pool }
    }

    async fn drop(self) {
        self.pool.close().await;
        // FORCE: the authenticator's last-used update may still hold a session for a moment.
        let name = self.url.rsplit('/').next().expect("a database name");
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        assert!(!Postgres::database_exists(&self.url).await.unwrap());
    }

    async fn insert_key(
        &self,
        name: &str,
        role: &str,
        expires_in_secs: Option<i64>,
        revoked: bool,
    ) -> (Uuid, NewApiKey) {
        let key = generate_api_key();
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, key_hash, role, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END)",
        )
        .bind(id)
        .bind(name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(role)
        .bind(expires_in_secs.map(|s| Utc::now() + ChronoDuration::seconds(s)))
        .bind(revoked)
        .execute(&self.pool)
        .await
        .unwrap();
        (id, key)
    }
}

fn jwt() -> JwtKeys {
    JwtKeys::new(
        b"0123456789abcdef0123456789abcdef",
        "sim-platform",
        "sim-platform-api",
    )
    .unwrap()
}

fn headers(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

#[tokio::test]
async fn api_keys_and_bearer_tokens() {
    let db = TestDb::new().await;
    let auth = Authenticator::new(jwt(), db.pool.clone());

    // A valid key → its principal, and its use is recorded.
    let (id, key) = db.insert_key("ci-pipeline", "operator", Some(3600), false).await;
    let p = auth.authenticate(&headers("x-api-key", &key.key)).await.unwrap();
    assert_eq!(
        p.subject,
        PrincipalKind::ApiKey {
            id,
            name: "ci-pipeline".into()
        }
    );
    assert_eq!(p.role, Role::Operator);
    assert_eq!(p.actor(), "api_key:ci-pipeline");
    let used: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(used.is_some());

    // A key without expiry works too.
    let (_, forever) = db.insert_key("forever", "viewer", None, false).await;
    assert_eq!(
        auth.authenticate(&headers("x-api-key", &forever.key))
            .await
            .unwrap()
            .role,
        Role::Viewer
    );

    // Revoked, expired, unknown and malformed keys → 401 INVALID_API_KEY.
    let (_, revoked) = db.insert_key("revoked", "admin", None, true).await;
    let (_, expired) = db.insert_key("expired", "admin", Some(-5), false).await;
    let unknown = generate_api_key();
    for k in [
        revoked.key.as_str(),
        expired.key.as_str(),
        unknown.key.as_str(),
        "not_a_key",
    ] {
        let err = auth.authenticate(&headers("x-api-key", k)).await.unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::UNAUTHORIZED, "INVALID_API_KEY"),
            "{k}"
        );
    }

    // Bearer: a valid access token → user principal; garbage and refresh tokens → INVALID_TOKEN.
    let user = Uuid::new_v4();
    let access = jwt().issue_access(user, "alice", Role::Admin).unwrap().token;
    let p = auth
        .authenticate(&headers("authorization", &format!("Bearer {access}")))
        .await
        .unwrap();
    assert_eq!(
        p.subject,
        PrincipalKind::User {
            id: user,
            username: "alice".into()
        }
    );
    assert_eq!(p.actor(), "user:alice");
    assert_eq!(p.role, Role::Admin, "no user row: the token's role");
    // A stored user: the stored role wins over the token's; a disabled one is refused.
    let (stored, disabled) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO users VALUES ($1, 'viewer', false), ($2, 'admin', true)")
        .bind(stored)
        .bind(disabled)
        .execute(&db.pool)
        .await
        .unwrap();
    let bearer = |id| {
        let token = jwt().issue_access(id, "bob", Role::Admin).unwrap().token;
        headers("authorization", &format!("Bearer {token}"))
    };
    assert_eq!(
        auth.authenticate(&bearer(stored)).await.unwrap().role,
        Role::Viewer
    );
    let err = auth.authenticate(&bearer(disabled)).await.unwrap_err();
    assert_eq!(
        (err.status, err.code.as_ref()),
        (StatusCode::UNAUTHORIZED, "ACCOUNT_DISABLED")
    );
    // A change made in this process is seen at once once forgotten (as PATCH /users does).
    sqlx::query("UPDATE users SET role = 'operator' WHERE id = $1")
        .bind(stored)
        .execute(&db.pool)
        .await
        .unwrap();
    auth.forget_user(stored);
    assert_eq!(
        auth.authenticate(&bearer(stored)).await.unwrap().role,
        Role::Operator
    );
    let refresh = jwt()
        .issue_refresh(user, "alice", Role::Admin, Uuid::new_v4(), Uuid::new_v4())
        .unwrap()
        .token;
    for value in [
        format!("Bearer {refresh}"),
        "Bearer abc.def.ghi".into(),
        format!("Basic {access}"),
    ] {
        let err = auth
            .authenticate(&headers("authorization", &value))
            .await
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::UNAUTHORIZED, "INVALID_TOKEN"),
            "{value}"
        );
    }

    // Nothing → 401 UNAUTHENTICATED with WWW-Authenticate.
    let err = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
    assert_eq!(
        (err.status, err.code.as_ref()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    assert_eq!(err.header("www-authenticate").unwrap(), "Bearer");

    // The extractor, through the standard layers.
    #[derive(Clone)]
    struct AppState {
        auth: Authenticator,
    }
    impl FromRef<AppState> for Authenticator {
        fn from_ref(s: &AppState) -> Self {
            s.auth.clone()
        }
    }
    async fn whoami(principal: Principal) -> Result<String, platform::ApiError> {
        principal.require(Role::Operator)?;
        Ok(principal.actor())
    }
    let metrics = platform::Metrics::new();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(AppState { auth: auth.clone() });
    let app = platform::http::with_standard_layers(app, metrics, 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let whoami_with_key = |key: &str| {
        client
            .get(format!("{base}/whoami"))
            .header("x-api-key", key)
            .send()
    };
    let r = whoami_with_key(&key.key).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "api_key:ci-pipeline");
    let r = client.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    let r = whoami_with_key(&forever.key).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert_eq!(body["error"]["details"]["required_role"], "operator");

    drop(auth);
    db.drop().await;
}

/// The value of the session setting `name` on `conn`, as `SHOW` gives it.
async fn setting(conn: &mut sqlx::PgConnection, name: &str) -> String {
    sqlx::query_scalar(&format!("SHOW {name}"))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn pool_connections_have_bounded_timeouts() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let idle = setting(&mut conn, "idle_in_transaction_session_timeout").await;
    let stmt = setting(&mut conn, "statement_timeout").await;
    assert_eq!((idle.as_str(), stmt.as_str()), ("30s", "30s"));
    assert!(db::ping(&db.pool).await.is_ok());
    drop(conn);
    db.drop().await;
}
