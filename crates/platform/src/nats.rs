//! The one way every process connects to NATS: its URL (user info in it is honoured by the
//! client) and its credentials (`NATS_USER` / `NATS_PASSWORD`, or `NATS_CREDS_FILE`).

use std::time::Duration;

use crate::config::NatsCredentials;

/// Why a NATS connection could not be set up (a missing creds file, a malformed URL). An
/// unreachable server is not an error here: the client keeps retrying in the background.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {reason}")]
pub struct NatsConnectError {
    pub url: String,
    pub reason: String,
}

/// Connects as `credentials`, naming the connection `name` (visible in the server's
/// connection list). Retries the first connection in the background, so a process starts while
/// NATS is away; an authorization failure is logged by the client on every attempt.
pub async fn connect(
    url: &str,
    credentials: &NatsCredentials,
    name: &str,
) -> Result<async_nats::Client, NatsConnectError> {
    let error = |reason: String| NatsConnectError {
        url: crate::config::redact_url(url),
        reason,
    };
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        // Keeps a dead server from going unnoticed for the default two minutes.
        .ping_interval(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(5));
    if let Some(path) = &credentials.creds_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| error(format!("creds file {path}: {e}")))?;
    }
    if let (Some(user), Some(password)) = (&credentials.user, &credentials.password) {
        options = options.user_and_password(user.clone(), password.clone());
    } else if credentials.user.is_some() {
        return Err(error("NATS_USER is set without NATS_PASSWORD".to_owned()));
    }
    options.connect(url).await.map_err(|e| error(e.to_string()))
}
