//! Argon2id password hashes, computed off the async runtime and rate-bounded: each hash costs
//! tens of milliseconds of CPU and ~19 MiB, so a login flood must neither block the runtime's
//! workers nor queue unboundedly. Work runs in `spawn_blocking` behind a semaphore; a caller
//! that can't get a permit within `max_wait` gets `AuthError::Busy` (→ 503 `AUTH_BUSY`).

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{self, PasswordHash, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHasher as _};
use rand::rngs::OsRng;
use rand::TryRngCore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AuthError;
use crate::error::ApiError;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(2);

/// An argon2id hash (default parameters) of a random, discarded password: verifying against it
/// costs what verifying a real user's hash costs, so unknown usernames can't be told by timing.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2ltcGxhdGZvcm1kdW1teQ$6Gc4Ey5cGp5vbmgU9ZWS4hyx7CWz7TS/kYaGEgTg7vY";

#[derive(Clone, Debug)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    max_wait: Duration,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHasher {
    /// One permit per available core, 2 s maximum wait.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_limits(cores, DEFAULT_MAX_WAIT)
    }

    pub fn with_limits(permits: usize, max_wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            max_wait,
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or (never: we don't close it) the semaphore was closed.
            _ => {
                tracing::warn!("password hashing saturated; refusing with AUTH_BUSY");
                Err(AuthError::Busy)
            }
        }
    }

    /// Runs `work` on the blocking pool holding a permit. The permit moves into the closure,
    /// so a caller that gives up (client disconnect) still can't oversubscribe the CPUs.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AuthError::Hashing(format!("hashing task failed: {e}")))?
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.run(move || {
            let mut salt = [0u8; 16];
            OsRng
                .try_fill_bytes(&mut salt)
                .map_err(|e| AuthError::Hashing(e.to_string()))?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hashing(e.to_string()))?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Hashing(e.to_string()))
        })
        .await
    }

    /// `Ok(false)` for a wrong password; `Err` for an unreadable stored hash or `Busy`.
    pub async fn verify(&self, password: &str, phc_hash: &str) -> Result<bool, AuthError> {
        let (password, phc_hash) = (password.to_owned(), phc_hash.to_owned());
        self.run(move || verify_blocking(&password, &phc_hash)).await
    }

    /// Spends the time of a real verification; call it when the username is unknown.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), AuthError> {
        self.verify(password, DUMMY_HASH).await.map(|_| ())
    }
}

fn verify_blocking(password: &str, phc_hash: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc_hash)
        .map_err(|e| AuthError::Hashing(format!("unreadable stored hash: {e}")))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(AuthError::Hashing(e.to_string())),
    }
}

/// The password policy: 8 to 128 characters, else 422 `WEAK_PASSWORD`.
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "WEAK_PASSWORD",
            format!("a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        )
        .with_details(serde_json::json!({
            "min_length": MIN_PASSWORD_CHARS, "max_length": MAX_PASSWORD_CHARS,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::Params;

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
        // Salted: the same password hashes differently.
        assert_ne!(hash, hasher.hash("correct horse battery").await.unwrap());
        assert!(hasher.verify("x", "not-a-phc-string").await.is_err());
    }

    #[tokio::test]
    async fn busy_when_no_permit_within_the_bound() {
        let hasher = PasswordHasher::with_limits(1, Duration::ZERO);
        let held = hasher.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(hasher.hash("password123").await, Err(AuthError::Busy)));
        assert!(matches!(
            hasher.verify_dummy("password123").await,
            Err(AuthError::Busy)
        ));
        drop(held);
        assert!(hasher.hash("password123").await.is_ok());
    }

    #[tokio::test]
    async fn busy_maps_to_503_auth_busy() {
        let api: ApiError = AuthError::Busy.into();
        assert_eq!(api.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.code, "AUTH_BUSY");
    }

    #[tokio::test]
    async fn dummy_hash_costs_like_a_real_one() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        let default = Params::default();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
        // It verifies as a normal (non-matching) hash, not as an error.
        assert!(PasswordHasher::new().verify_dummy("anything").await.is_ok());
        assert!(!verify_blocking("anything", DUMMY_HASH).unwrap());
    }

    #[test]
    fn password_policy() {
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password(&"ü".repeat(128)).is_ok()); // characters, not bytes
        let err = validate_password(&"a".repeat(129)).unwrap_err();
        assert_eq!(err.code, "WEAK_PASSWORD");
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
}
