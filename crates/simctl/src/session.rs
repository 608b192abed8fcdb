//! `simctl login`'s session: the access and refresh tokens in a file only the user can read
//! (0600, in a 0700 directory), refreshed when the access token has expired. Refresh tokens
//! rotate: each refresh spends the old one, so the file is rewritten after every refresh.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{CliError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: Option<String>,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds after which the access token is refused.
    pub expires_at: u64,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Session {
    /// From a login's or refresh's answer `{access_token, refresh_token, expires_in}`.
    pub fn from_answer(username: Option<String>, answer: &Value) -> Result<Self> {
        let text = |field: &str| {
            answer[field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| CliError::unavailable(format!("the login answer has no {field}")))
        };
        Ok(Self {
            username,
            access_token: text("access_token")?,
            refresh_token: text("refresh_token")?,
            expires_at: now() + answer["expires_in"].as_u64().unwrap_or(0),
        })
    }

    /// The access token is spent, or will be within the next 30 s (a request under way must
    /// not lose it).
    pub fn expiring(&self) -> bool {
        now() + 30 >= self.expires_at
    }

    pub fn load(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| CliError::usage(format!("session file {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::usage(format!("session file {}: {e}", path.display()))),
        }
    }

    /// Writes the session through a temporary file renamed into place, created 0600, so no
    /// reader ever sees half a file or a readable token.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| CliError::usage("the session path has no directory"))?;
        create_private_dir(dir)?;
        let temporary = path.with_extension(format!("json.{}", std::process::id()));
        let mut file = private_file(&temporary)?;
        file.write_all(serde_json::to_string_pretty(self).unwrap_or_default().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }

    pub fn remove(path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::usage(format!("{}: {e}", dir.display())))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::usage(format!("{}: {e}", dir.display())))
}

#[cfg(unix)]
fn private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}
