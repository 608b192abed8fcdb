//! Users (admin only): create, list, change role, disable and enable.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{patch, post};
use axum::{Json, Router};
use platform::auth::{validate_password, UserChange, UserUpdate};
use platform::{ApiError, ApiJson, ApiPath, Principal, Role};
use serde::Deserialize;
use uuid::Uuid;

use crate::openapi::ErrorBody;
use crate::state::AppState;
use platform::auth::User;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", post(create_user).get(list_users))
        .route("/users/{id}", patch(update_user))
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

/// What to change; what is left out stays as it is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// admin, operator or viewer: in effect at the user's next login or refresh, and for
    /// their current access token within seconds.
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
    /// `true` refuses the user's login, refresh and access tokens and revokes every refresh
    /// token of theirs; `false` enables the account again.
    disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "the user's id")),
    responses((status = 200, body = User), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "`USER_NOT_FOUND`"),
        (status = 409, body = ErrorBody, description = "`LAST_ADMIN`: the change would leave no enabled admin"),
        (status = 422, body = ErrorBody)))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    principal.require(Role::Admin)?;
    let change = UserChange {
        role: request.role,
        disabled: request.disabled,
    };
    let outcome = state.accounts.update_user(id, change).await?;
    // This process refuses a disabled user's access token at once; the others within seconds.
    state.authenticator.forget_user(id);
    match outcome {
        UserUpdate::Updated(user) => {
            tracing::info!(user = %user.username, role = ?change.role, disabled = ?change.disabled, by = %principal.actor(), "user changed");
            Ok(Json(user))
        }
        UserUpdate::NotFound => Err(ApiError::not_found("USER_NOT_FOUND", format!("no user {id}"))),
        UserUpdate::LastAdmin => Err(ApiError::conflict(
            "LAST_ADMIN",
            "this is the last enabled admin: make another user admin first",
        )),
    }
}
