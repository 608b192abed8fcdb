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
    } else if let Some((user, password)) = url_user_info(url) {
        // The client does not read user info from the URL itself.
        options = options.user_and_password(user, password);
    }
    options.connect(url).await.map_err(|e| error(e.to_string()))
}

/// [`connect`] with a process's common settings (`NATS_URL`, `NATS_USER`, …).
pub async fn connect_common(
    config: &crate::config::CommonConfig,
    name: &str,
) -> Result<async_nats::Client, NatsConnectError> {
    connect(&config.nats_url, &config.nats_credentials, name).await
}

/// `user:password` from `nats://user:password@host:port` (the first server of a comma-separated
/// list that has any), percent-decoded.
pub fn url_user_info(url: &str) -> Option<(String, String)> {
    url.split(',').find_map(|one| {
        let address: async_nats::ServerAddr = one.trim().parse().ok()?;
        let user = address.username()?;
        Some((
            percent_decode(user),
            percent_decode(address.password().unwrap_or("")),
        ))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_comes_from_the_url() {
        assert_eq!(
            url_user_info("nats://relay:s%40cret%3A1@127.0.0.1:4222"),
            Some(("relay".to_owned(), "s@cret:1".to_owned()))
        );
        assert_eq!(url_user_info("nats://127.0.0.1:4222"), None);
        assert_eq!(
            url_user_info("nats://a:4222, nats://u:p@b:4222"),
            Some(("u".to_owned(), "p".to_owned()))
        );
    }
}
