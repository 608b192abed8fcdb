//! Login, token refresh with rotation (refresh token in the JSON body or, for browsers, in
//! the `simp_refresh` cookie), logout, who-am-I, and API keys.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::auth::{generate_api_key, IssuedToken, PrincipalKind};
use platform::http::ClientIp;
use platform::{ApiError, ApiJson, ApiPath, Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::browser_session::{cleared_cookie, refresh_cookie, refresh_cookie_in};
use crate::openapi::ErrorBody;
use crate::state::AppState;
use platform::auth::{ApiKeyInfo, RefreshUse, User};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/api-keys", post(create_api_key).get(list_api_keys))
        .route("/auth/api-keys/{id}", delete(revoke_api_key))
}

/// Where the refresh token travels: in the JSON answer (API clients, the default) or in the
/// `simp_refresh` cookie (browsers: script never sees it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Session {
    #[default]
    Json,
    Cookie,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
    /// `cookie`: the refresh token is set as the `simp_refresh` cookie, not answered (needs
    /// an allowed `Origin`). Default `json`.
    #[serde(default)]
    session: Session,
}

/// An access token, and the refresh token in JSON mode only (cookie mode sets it as the
/// `simp_refresh` cookie instead).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenPair {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: &'static str,
    expires_in: u64,
}

/// What a login or a refresh issued: an access token and the next refresh token.
struct Issued {
    access: IssuedToken,
    refresh: IssuedToken,
}

impl Issued {
    fn answer(self, session: Session) -> Response {
        let cookie = (session == Session::Cookie)
            .then(|| refresh_cookie(&self.refresh.token, self.refresh.expires_in));
        let body = TokenPair {
            access_token: self.access.token,
            refresh_token: cookie.is_none().then_some(self.refresh.token),
            token_type: "bearer",
            expires_in: self.access.expires_in,
        };
        // Tokens must not be kept by any cache on the way.
        let mut response = (
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response();
        if let Some(cookie) = cookie {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        response
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    params(("Origin" = Option<String>, Header, description = "required with `session: cookie`: the request's own origin or one of `AUTH_ALLOWED_ORIGINS`")),
    responses(
        (status = 200, body = TokenPair, description = "`session: cookie` answers no `refresh_token` and sets the cookie",
            headers(("Set-Cookie" = String, description = "cookie mode: `simp_refresh=<refresh token>; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=604800`"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "cookie mode without an allowed Origin: `ORIGIN_NOT_ALLOWED`"),
        (status = 429, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    if request.session == Session::Cookie {
        state.allowed_origins.check(&headers)?;
    }
    // Both limits: per IP stops one client guessing many accounts, per username stops many
    // clients guessing one account.
    state.login_by_ip.check(&client_ip)?;
    let username = request.username.trim().to_lowercase();
    state.login_by_username.check(&username)?;

    let invalid = || ApiError::unauthorized("INVALID_CREDENTIALS", "unknown username or wrong password");
    let user = state.accounts.user_by_name(&username).await?;
    let Some(user) = user.filter(|user| !user.disabled) else {
        // Spend the time a real check takes, so timing does not tell which usernames exist.
        state.passwords.verify_dummy(&request.password).await?;
        return Err(invalid());
    };
    if !state
        .passwords
        .verify(&request.password, &user.password_hash)
        .await?
    {
        return Err(invalid());
    }
    tracing::info!(user = %user.username, session = ?request.session, "login");
    Ok(issue(&state, &user, Uuid::now_v7())
        .await?
        .answer(request.session))
}

async fn issue(state: &AppState, user: &User, family_id: Uuid) -> Result<Issued, ApiError> {
    let role = user.role.0;
    let access = state
        .jwt()
        .issue_access(user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    let jti = Uuid::now_v7();
    let refresh = state
        .jwt()
        .issue_refresh(user.id, &user.username, role, family_id, jti)
        .map_err(ApiError::internal)?;
    state
        .accounts
        .record_refresh_token(jti, family_id, user.id, refresh.expires_at)
        .await?;
    Ok(Issued { access, refresh })
}

/// `{refresh_token}`: JSON mode. No body, `{}` or `null`: cookie mode.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: Option<String>,
}

/// The refresh token a refresh or a logout uses, and from where: the JSON body's when there
/// is one (API clients; no Origin needed), else the cookie's, after the Origin check.
fn presented_token(
    state: &AppState,
    headers: &HeaderMap,
    body: Option<ApiJson<Option<RefreshRequest>>>,
) -> Result<(Session, Option<String>), ApiError> {
    match body.and_then(|ApiJson(body)| body?.refresh_token) {
        Some(token) => Ok((Session::Json, Some(token))),
        None => {
            state.allowed_origins.check(headers)?;
            Ok((Session::Cookie, refresh_cookie_in(headers).map(str::to_owned)))
        }
    }
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Option<RefreshRequest>,
    params(
        ("simp_refresh" = Option<String>, Cookie, description = "cookie mode (no body, or `{}`): the refresh token set by a cookie-mode login or refresh"),
        ("Origin" = Option<String>, Header, description = "required in cookie mode: the request's own origin or one of `AUTH_ALLOWED_ORIGINS`")),
    responses(
        (status = 200, body = TokenPair, description = "a new access token and a new refresh token (in the body, or the rotated cookie in cookie mode)",
            headers(("Set-Cookie" = String, description = "cookie mode: the rotated `simp_refresh` cookie"))),
        (status = 401, body = ErrorBody, description = "invalid, expired, revoked or reused (`REFRESH_TOKEN_REUSED`) token; cookie mode also clears the cookie"),
        (status = 403, body = ErrorBody, description = "cookie mode without an allowed Origin: `ORIGIN_NOT_ALLOWED`")))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<ApiJson<Option<RefreshRequest>>>,
) -> Result<Response, ApiError> {
    let (session, token) = presented_token(&state, &headers, body)?;
    let rotated = match token {
        Some(token) => rotate(&state, &token).await,
        None => Err(ApiError::unauthorized(
            "INVALID_TOKEN",
            "no refresh token: send {\"refresh_token\"} or the simp_refresh cookie",
        )),
    };
    match (rotated, session) {
        (Ok(issued), session) => Ok(issued.answer(session)),
        // A cookie that failed once never works again: the browser may as well drop it.
        (Err(error), Session::Cookie) if error.status == StatusCode::UNAUTHORIZED => {
            Err(error.with_header(SET_COOKIE, cleared_cookie()))
        }
        (Err(error), _) => Err(error),
    }
}

/// Spends `token` and issues the next pair of its family.
async fn rotate(state: &AppState, token: &str) -> Result<Issued, ApiError> {
    let claims = state
        .jwt()
        .verify_refresh(token)
        .map_err(|_| ApiError::unauthorized("INVALID_TOKEN", "the refresh token is invalid or expired"))?;
    let jti = claims.jti;
    match state.accounts.use_refresh_token(jti).await? {
        RefreshUse::Fresh { family_id, user } => issue(state, &user, family_id).await,
        RefreshUse::Reused => {
            tracing::warn!(jti = %jti, "refresh token reused; its family is revoked");
            Err(ApiError::unauthorized(
                "REFRESH_TOKEN_REUSED",
                "this refresh token was already used; every token of its login is now revoked",
            ))
        }
        RefreshUse::Invalid => Err(ApiError::unauthorized(
            "INVALID_TOKEN",
            "the refresh token is revoked, expired or unknown",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = Option<RefreshRequest>,
    params(
        ("simp_refresh" = Option<String>, Cookie, description = "cookie mode (no body, or `{}`): the session's refresh token"),
        ("Origin" = Option<String>, Header, description = "required in cookie mode: the request's own origin or one of `AUTH_ALLOWED_ORIGINS`")),
    responses(
        (status = 204, description = "every refresh token of the login is revoked (also when the token was already revoked, expired, unknown or missing); the cookie is cleared",
            headers(("Set-Cookie" = String, description = "`simp_refresh=; …; Max-Age=0`"))),
        (status = 403, body = ErrorBody, description = "cookie mode without an allowed Origin: `ORIGIN_NOT_ALLOWED`")))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<ApiJson<Option<RefreshRequest>>>,
) -> Result<Response, ApiError> {
    let (_, token) = presented_token(&state, &headers, body)?;
    // Only a token we signed names a family; anything else has nothing to revoke.
    if let Some(jti) = token.and_then(|token| state.jwt().refresh_token_id(&token).ok()) {
        state.accounts.revoke_refresh_family(jti).await?;
        tracing::info!(jti = %jti, "logout: the login's refresh tokens are revoked");
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cleared_cookie())]).into_response())
}

/// Who the credentials belong to.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    /// The user's name, or the API key's name.
    username: String,
    #[schema(value_type = String)]
    role: Role,
    kind: CallerKind,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CallerKind {
    User,
    ApiKey,
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Me)))]
pub(crate) async fn me(principal: Principal) -> Json<Me> {
    let (username, kind) = match principal.subject {
        PrincipalKind::User { username, .. } => (username, CallerKind::User),
        PrincipalKind::ApiKey { name, .. } => (name, CallerKind::ApiKey),
    };
    Json(Me {
        username,
        role: principal.role,
        kind,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    name: String,
    /// admin, operator or viewer (the default).
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedApiKey {
    id: Uuid,
    name: String,
    prefix: String,
    /// Shown once: only its SHA-256 is stored.
    key: String,
    #[schema(value_type = String)]
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/auth/api-keys", tag = "auth", request_body = CreateApiKey,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Admin)?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation(
            "INVALID_NAME",
            "name must be 1 to 100 characters",
        ));
    }
    if request.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::validation(
            "INVALID_EXPIRY",
            "expires_at must be in the future",
        ));
    }
    // Least privilege unless asked otherwise.
    let role = request.role.unwrap_or(Role::Viewer);
    let new_key = generate_api_key();
    let info = state
        .accounts
        .create_api_key(
            name,
            &new_key.prefix,
            &new_key.hash,
            role,
            principal.user_id(),
            request.expires_at,
        )
        .await?;
    tracing::info!(key = %info.id, name, %role, by = %principal.actor(), "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: info.id,
            name: info.name,
            prefix: info.prefix,
            key: new_key.key,
            role,
            expires_at: info.expires_at,
            created_at: info.created_at,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/auth/api-keys", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<ApiKeyInfo>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Admin)?;
    Ok(Json(state.accounts.list_api_keys().await?))
}

#[utoipa::path(delete, path = "/api/v1/auth/api-keys/{id}", tag = "auth", security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the key's id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    if !state.accounts.revoke_api_key(id).await? {
        return Err(ApiError::not_found(
            "API_KEY_NOT_FOUND",
            format!("no API key {id}"),
        ));
    }
    tracing::info!(key = %id, by = %principal.actor(), "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
