//! Turns request credentials into a [`Principal`]: `Authorization: Bearer <jwt>` (access
//! token) or `X-API-Key: iot_key_…` (looked up by SHA-256 in `api_keys`).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{HeaderMap, AUTHORIZATION};
use axum::http::request::Parts;
use chrono::Utc;
use sqlx::PgPool;

use super::{
    hash_api_key, looks_like_api_key, Accounts, AuthError, JwtKeys, Principal, PrincipalKind, Role,
    StoredApiKey, UserState, UserStates, USER_STATE_TTL,
};
use crate::error::ApiError;

pub const X_API_KEY: &str = "x-api-key";

/// Cheap to clone (keys behind an `Arc`, the pool is a handle): put it in the app state and
/// implement `FromRef` so handlers can take a [`Principal`].
#[derive(Clone)]
pub struct Authenticator {
    pub jwt: JwtKeys,
    accounts: Accounts,
    users: UserStates,
}

impl Authenticator {
    pub fn new(jwt: JwtKeys, pool: PgPool) -> Self {
        let accounts = Accounts::new(pool);
        Self {
            jwt,
            users: UserStates::new(accounts.clone(), USER_STATE_TTL),
            accounts,
        }
    }

    /// After a change to user `id` in this process: its next request reads the user afresh.
    pub fn forget_user(&self, id: uuid::Uuid) {
        self.users.forget(id);
    }

    /// A bearer token wins when both credentials are sent. An access token's user is re-read
    /// (at most every [`USER_STATE_TTL`]): a disabled user's token is refused and the stored
    /// role wins over the token's.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .ok_or_else(|| {
                    ApiError::unauthorized("INVALID_TOKEN", "expected Authorization: Bearer <token>")
                })?;
            return self.principal_from_access_token(token).await;
        }
        if let Some(value) = headers.get(X_API_KEY) {
            let key = value
                .to_str()
                .map_err(|_| ApiError::from(AuthError::InvalidApiKey))?;
            return self.principal_from_api_key(key.trim()).await;
        }
        Err(ApiError::unauthorized(
            "UNAUTHENTICATED",
            "credentials required: Authorization: Bearer <token> or X-API-Key",
        ))
    }

    async fn principal_from_access_token(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.jwt.verify_access(token)?;
        let role = match self.users.get(claims.sub).await? {
            Some(UserState { disabled: true, .. }) => {
                return Err(ApiError::unauthorized(
                    "ACCOUNT_DISABLED",
                    "this account is disabled",
                ))
            }
            Some(UserState { role, .. }) => role,
            // No such user in this database: only a token signed outside the platform (tools,
            // tests) names one, since users are never deleted; it holds what it says.
            None => claims.role,
        };
        Ok(Principal {
            subject: PrincipalKind::User {
                id: claims.sub,
                username: claims.username,
            },
            role,
        })
    }

    async fn principal_from_api_key(&self, key: &str) -> Result<Principal, ApiError> {
        if !looks_like_api_key(key) {
            return Err(AuthError::InvalidApiKey.into());
        }
        let Some(StoredApiKey {
            id,
            name,
            role,
            expires_at,
            revoked_at,
        }) = self.accounts.api_key_by_hash(&hash_api_key(key)).await?
        else {
            return Err(AuthError::InvalidApiKey.into());
        };
        if revoked_at.is_some() || expires_at.is_some_and(|at| at <= Utc::now()) {
            tracing::debug!(api_key_id = %id, "revoked or expired API key refused");
            return Err(AuthError::InvalidApiKey.into());
        }
        let role: Role = role
            .parse()
            .map_err(|e| ApiError::internal(format!("api key {id}: {e}")))?;
        // Best effort, and at most once a minute per key: not a write on every request.
        if let Err(err) = self.accounts.touch_api_key(id).await {
            tracing::warn!(api_key_id = %id, error = %err, "could not record API key use");
        }
        Ok(Principal {
            subject: PrincipalKind::ApiKey { id, name },
            role,
        })
    }
}

/// Handlers take `principal: Principal`; a request without valid credentials is answered
/// 401 before the handler runs. The result is cached in the request extensions.
impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = Authenticator::from_ref(state)
            .authenticate(&parts.headers)
            .await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
