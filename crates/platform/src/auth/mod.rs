//! Authentication and authorisation: JWTs, API keys, passwords, roles, principals, rate limits.

mod accounts;
mod api_key;
mod authenticator;
mod jwt;
mod password;
mod principal;
mod rate_limit;
mod role;
mod user_state;

pub use accounts::{
    Accounts, ApiKeyInfo, RefreshUse, RoleColumn, StoredApiKey, User, UserChange, UserState, UserUpdate,
};
pub use api_key::{generate_api_key, hash_api_key, looks_like_api_key, NewApiKey, API_KEY_PREFIX};
pub use authenticator::Authenticator;
pub use jwt::{
    Claims, IssuedToken, JwtKeys, TokenType, ACCESS_TOKEN_TTL_SECS, MAX_LEEWAY_SECS, REFRESH_TOKEN_TTL_SECS,
};
pub use password::{validate_password, PasswordHasher, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use principal::{Principal, PrincipalKind};
pub use rate_limit::KeyedRateLimiter;
pub use role::{ParseRoleError, Role};
pub use user_state::{UserStates, USER_STATE_TTL};

use axum::http::{HeaderValue, StatusCode};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token expired")]
    Expired,
    /// A refresh token presented as an access token, or the reverse.
    #[error("wrong token type")]
    WrongTokenType,
    #[error("invalid API key")]
    InvalidApiKey,
    /// Every password-hashing permit stayed taken for the whole bounded wait.
    #[error("authentication is busy")]
    Busy,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("token signing failed: {0}")]
    Signing(String),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Expired => ApiError::unauthorized("INVALID_TOKEN", "token expired"),
            AuthError::InvalidToken(_) | AuthError::WrongTokenType => {
                tracing::debug!(error = %err, "token refused");
                ApiError::unauthorized("INVALID_TOKEN", "invalid token")
            }
            AuthError::InvalidApiKey => ApiError::unauthorized("INVALID_API_KEY", "invalid API key"),
            AuthError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "AUTH_BUSY",
                "authentication is busy, retry shortly",
            )
            .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1")),
            AuthError::Hashing(_) | AuthError::Signing(_) => ApiError::internal(err),
        }
    }
}
