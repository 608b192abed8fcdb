//! Users (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use platform::auth::validate_password;
use platform::{ApiError, ApiJson, Principal, Role};
use serde::Deserialize;

use crate::openapi::ErrorBody;
use crate::state::AppState;
use platform::auth::User;

pub fn routes() -> Router<AppState> {
    Router::new().route("/users", post(create_user).get(list_users))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    username: String,
    password: String,
    #[schema(value_type = String)]
    role: Role,
}

fn valid_username(name: &str) -> bool {
    (3..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = User), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Admin)?;
    // Usernames are case-insensitive at login, so they are stored lower-case.
    let username = request.username.trim().to_lowercase();
    if !valid_username(&username) {
        return Err(ApiError::validation(
            "INVALID_USERNAME",
            "username must be 3 to 64 characters of letters, digits, '.', '_', '-' or '@'",
        ));
    }
    validate_password(&request.password)?;
    let hash = state.passwords.hash(&request.password).await?;
    let Some(user) = state.accounts.create_user(&username, &hash, request.role).await? else {
        return Err(ApiError::conflict(
            "USERNAME_TAKEN",
            format!("user {username:?} exists already"),
        ));
    };
    tracing::info!(user = %user.username, role = %request.role, by = %principal.actor(), "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Admin)?;
    Ok(Json(state.accounts.list_users().await?))
}
