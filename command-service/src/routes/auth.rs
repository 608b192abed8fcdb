//! Login, token refresh with rotation, and API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::auth::{generate_api_key, IssuedToken};
use platform::http::ClientIp;
use platform::{ApiError, ApiJson, ApiPath, Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::openapi::ErrorBody;
use crate::state::AppState;
use platform::auth::{ApiKeyInfo, RefreshUse, User};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/api-keys", post(create_api_key).get(list_api_keys))
        .route("/auth/api-keys/{id}", delete(revoke_api_key))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenPair {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
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
    tracing::info!(user = %user.username, "login");
    issue_pair(&state, &user, Uuid::now_v7()).await.map(Json)
}

async fn issue_pair(state: &AppState, user: &User, family_id: Uuid) -> Result<TokenPair, ApiError> {
    let role = user.role.0;
    let access: IssuedToken = state
        .jwt()
        .issue_access(user.id, &user.username, role)
        .map_err(ApiError::internal)?;
    let jti = Uuid::now_v7();
    let refresh: IssuedToken = state
        .jwt()
        .issue_refresh(user.id, &user.username, role, family_id, jti)
        .map_err(ApiError::internal)?;
    state
        .accounts
        .record_refresh_token(jti, family_id, user.id, refresh.expires_at)
        .await?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        token_type: "bearer",
        expires_in: access.expires_in,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let claims = state
        .jwt()
        .verify_refresh(&request.refresh_token)
        .map_err(|_| ApiError::unauthorized("INVALID_TOKEN", "the refresh token is invalid or expired"))?;
    let jti = claims.jti;
    match state.accounts.use_refresh_token(jti).await? {
        RefreshUse::Fresh { family_id, user } => issue_pair(&state, &user, family_id).await.map(Json),
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
