//! Profiles: where the APIs and NATS are, and where the credentials come from (a file or the
//! environment, never the command line). Read once into a [`Profile`].
//!
//! The file is `$SIMCTL_CONFIG`, else `$XDG_CONFIG_HOME/simctl/config.toml`, else
//! `~/.config/simctl/config.toml`; without a file, the environment alone (`SIMCTL_URL`, …) makes
//! the profile. Sessions of `simctl login` are kept beside it, in `sessions/<profile>.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{CliError, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, ProfileFile>,
}

/// One `[profiles.<name>]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    /// The gateway: both APIs under `<url>/api/v1`.
    url: Option<String>,
    /// The command API, when not behind one gateway with the query API.
    command_url: Option<String>,
    query_url: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    api_key_file: Option<PathBuf>,
    nats_url: Option<String>,
    nats_user: Option<String>,
    nats_password_file: Option<PathBuf>,
    stream: Option<String>,
    subject_prefix: Option<String>,
    /// Seconds a request may take (default 30).
    timeout_secs: Option<u64>,
}

/// Where the API key comes from.
#[derive(Debug, Clone)]
pub enum ApiKey {
    Value(String),
    File(PathBuf),
}

/// The profile in use, with the environment's overrides applied.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// Base URLs ending before `/api/v1`.
    pub command_url: String,
    pub query_url: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub api_key: Option<ApiKey>,
    pub nats_url: String,
    pub nats_user: Option<String>,
    pub nats_password_file: Option<PathBuf>,
    pub stream: String,
    pub subject_prefix: String,
    pub timeout_secs: u64,
    /// Where `simctl login` keeps this profile's session (mode 0600).
    pub session_path: PathBuf,
}

/// The configuration file's path.
pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = env("SIMCTL_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let base = match env("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => home()?.join(".config"),
    };
    Ok(base.join("simctl").join("config.toml"))
}

fn home() -> Result<PathBuf> {
    env("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| CliError::usage("HOME is not set; set SIMCTL_CONFIG to the configuration file"))
}

/// A variable of the environment, empty counting as unset.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `~/…` in a path from the file, relative paths taken from the file's directory.
fn expand(path: &Path, base: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().map(|h| h.join(rest)).unwrap_or_else(|_| path.to_owned()),
        Err(_) if path.is_relative() => base.join(path),
        Err(_) => path.to_owned(),
    }
}

/// Reads the file (when there is one) and picks the profile: `--profile`, else
/// `$SIMCTL_PROFILE`, else the file's `default_profile`, else `default`.
pub fn load(explicit_path: Option<&Path>, wanted: Option<&str>) -> Result<Profile> {
    let path = config_path(explicit_path)?;
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str::<File>(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit_path.is_none() => File::default(),
        Err(e) => return Err(CliError::usage(format!("{}: {e}", path.display()))),
    };
    let name = wanted
        .map(str::to_owned)
        .or_else(|| env("SIMCTL_PROFILE"))
        .or(file.default_profile.clone())
        .unwrap_or_else(|| "default".to_owned());
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(CliError::usage(format!(
            "profile name {name:?}: letters, digits, - _ . only"
        )));
    }
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let from_file = match file.profiles.get(&name) {
        Some(profile) => profile.clone(),
        // A profile named but not written is a mistake; the default one may live in the
        // environment alone.
        None if wanted.is_some() || env("SIMCTL_PROFILE").is_some() || file.default_profile.is_some() => {
            return Err(CliError::usage(format!(
                "no profile {name:?} in {} (profiles: {})",
                path.display(),
                file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        None => ProfileFile::default(),
    };
    resolve(name, from_file, &dir)
}

fn resolve(name: String, file: ProfileFile, dir: &Path) -> Result<Profile> {
    // The environment beats the file; a service's own URL beats the gateway's.
    let from_env = env("SIMCTL_URL");
    let command_url = env("SIMCTL_COMMAND_URL")
        .or(from_env.clone())
        .or(file.command_url)
        .or(file.url.clone())
        .ok_or_else(|| {
            CliError::usage(format!(
                "profile {name:?} names no API: set `url` (the gateway) or `command_url` and \
                 `query_url` in the configuration file, or SIMCTL_URL"
            ))
        })?;
    let query_url = env("SIMCTL_QUERY_URL")
        .or(from_env)
        .or(file.query_url)
        .or(file.url)
        .unwrap_or_else(|| command_url.clone());
    let api_key = match (env("SIMCTL_API_KEY"), env("SIMCTL_API_KEY_FILE")) {
        (Some(key), _) => Some(ApiKey::Value(key)),
        (None, Some(path)) => Some(ApiKey::File(PathBuf::from(path))),
        (None, None) => file.api_key_file.map(|p| ApiKey::File(expand(&p, dir))),
    };
    Ok(Profile {
        command_url: base_url(&command_url)?,
        query_url: base_url(&query_url)?,
        username: env("SIMCTL_USERNAME").or(file.username),
        password_file: env("SIMCTL_PASSWORD_FILE")
            .map(PathBuf::from)
            .or(file.password_file.map(|p| expand(&p, dir))),
        api_key,
        nats_url: env("SIMCTL_NATS_URL")
            .or(file.nats_url)
            .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
        nats_user: env("SIMCTL_NATS_USER").or(file.nats_user),
        nats_password_file: env("SIMCTL_NATS_PASSWORD_FILE")
            .map(PathBuf::from)
            .or(file.nats_password_file.map(|p| expand(&p, dir))),
        stream: env("SIMCTL_STREAM")
            .or(file.stream)
            .unwrap_or_else(|| "SIM_EVENTS".to_owned()),
        subject_prefix: env("SIMCTL_SUBJECT_PREFIX")
            .or(file.subject_prefix)
            .unwrap_or_else(|| "sim".to_owned()),
        timeout_secs: file.timeout_secs.unwrap_or(30).max(1),
        session_path: dir.join("sessions").join(format!("{name}.json")),
        name,
    })
}

/// `http(s)://host[:port][/prefix]` without a trailing slash or `/api/v1`.
fn base_url(url: &str) -> Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::usage(format!(
            "{url:?}: expected an http:// or https:// URL"
        )));
    }
    let trimmed = url.trim_end_matches('/');
    Ok(trimmed.strip_suffix("/api/v1").unwrap_or(trimmed).to_owned())
}

/// A secret from a file: its first line, trimmed (so `echo secret > file` works).
pub fn read_secret(path: &Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("{what} file {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or("").trim().to_owned();
    if secret.is_empty() {
        return Err(CliError::usage(format!(
            "{what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}
