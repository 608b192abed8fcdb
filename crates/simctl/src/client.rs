//! The two APIs behind one client: credentials (an API key, or the login's session refreshed
//! when its access token expires), the contract's error shape turned into [`ApiFailure`], and
//! retries of what is safe to send again (reads, and commands carrying an `Idempotency-Key`).

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::config::{read_secret, ApiKey, Profile};
use crate::error::{ApiFailure, CliError, Result};
use crate::session::Session;

/// Which API a route is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Command,
    Query,
}

/// A request's body.
pub enum Body {
    None,
    Json(Value),
}

/// An answer read whole: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

enum Credential {
    ApiKey(String),
    Session(Session),
}

pub struct Api {
    http: reqwest::Client,
    pub profile: Profile,
    credential: Mutex<Option<Credential>>,
    /// Attempts after the first for requests safe to repeat.
    retries: u32,
}

impl Api {
    pub fn new(profile: Profile) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(profile.timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("simctl/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            profile,
            credential: Mutex::new(None),
            retries: 2,
        })
    }

    fn url(&self, service: Service, path: &str) -> String {
        let base = match service {
            Service::Command => &self.profile.command_url,
            Service::Query => &self.profile.query_url,
        };
        format!("{base}/api/v1{path}")
    }

    /// Logs in with a password: stores the session and answers it.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let answer = self
            .send_raw(
                Service::Command,
                Method::POST,
                "/auth/login",
                &Body::Json(json!({"username": username, "password": password})),
                &[],
                None,
            )
            .await?;
        let answer = ok(answer)?;
        let session = Session::from_answer(Some(username.to_owned()), &answer.body)?;
        session.save(&self.profile.session_path)?;
        *self.credential.lock().unwrap() = Some(Credential::Session(session.clone()));
        Ok(session)
    }

    /// Spends the refresh token for a new pair, stored at once (the old one is spent).
    async fn refresh(&self, session: &Session) -> Result<Session> {
        let answer = self
            .send_raw(
                Service::Command,
                Method::POST,
                "/auth/refresh",
                &Body::Json(json!({"refresh_token": session.refresh_token})),
                &[],
                None,
            )
            .await?;
        match ok(answer) {
            Ok(answer) => {
                let fresh = Session::from_answer(session.username.clone(), &answer.body)?;
                fresh.save(&self.profile.session_path)?;
                Ok(fresh)
            }
            Err(CliError::Api(mut failure)) if failure.status == 401 => {
                failure
                    .message
                    .push_str("; the session has ended: run `simctl login` again");
                Err(CliError::Api(failure))
            }
            Err(other) => Err(other),
        }
    }

    /// The credential to send: the API key, else the session (refreshed when it expires),
    /// else a login with the profile's username and password file.
    async fn credential(&self, force_refresh: bool) -> Result<(&'static str, String)> {
        let current = self.credential.lock().unwrap().take();
        let credential = match current {
            Some(c) => c,
            None => self.initial_credential().await?,
        };
        let credential = match credential {
            Credential::Session(session) if force_refresh || session.expiring() => {
                // Another simctl of this profile may have refreshed already: its pair is on
                // disk, and spending our (now spent) refresh token again would end the session.
                let on_disk = Session::load(&self.profile.session_path)?
                    .filter(|s| s.refresh_token != session.refresh_token && !s.expiring());
                match on_disk {
                    Some(fresh) => Credential::Session(fresh),
                    None => Credential::Session(self.refresh(&session).await?),
                }
            }
            other => other,
        };
        let header = match &credential {
            Credential::ApiKey(key) => ("x-api-key", key.clone()),
            Credential::Session(s) => ("authorization", format!("Bearer {}", s.access_token)),
        };
        *self.credential.lock().unwrap() = Some(credential);
        Ok(header)
    }

    async fn initial_credential(&self) -> Result<Credential> {
        if let Some(key) = &self.profile.api_key {
            let key = match key {
                ApiKey::Value(key) => key.clone(),
                ApiKey::File(path) => read_secret(path, "API key")?,
            };
            return Ok(Credential::ApiKey(key));
        }
        if let Some(session) = Session::load(&self.profile.session_path)? {
            return Ok(Credential::Session(session));
        }
        match (&self.profile.username, &self.profile.password_file) {
            (Some(username), Some(path)) => {
                let password = read_secret(path, "password")?;
                Ok(Credential::Session(self.login(username, &password).await?))
            }
            _ => Err(CliError::usage(format!(
                "not logged in (profile {:?}): run `simctl login`, or set SIMCTL_API_KEY / \
                 SIMCTL_API_KEY_FILE, or a username and SIMCTL_PASSWORD_FILE",
                self.profile.name
            ))),
        }
    }

    /// Forgets the session: revokes its refresh token family and removes the file.
    pub async fn logout(&self) -> Result<bool> {
        let Some(session) = Session::load(&self.profile.session_path)? else {
            return Ok(false);
        };
        let body = Body::Json(json!({"refresh_token": session.refresh_token}));
        let answer = self
            .send_raw(Service::Command, Method::POST, "/auth/logout", &body, &[], None)
            .await;
        Session::remove(&self.profile.session_path)?;
        ok(answer?)?;
        Ok(true)
    }

    /// Sends with credentials; a `401` on a session's token refreshes it once and sends again.
    /// Safe requests (GET, or with an `Idempotency-Key` among `headers`) are retried on network
    /// errors, `429` and `503`.
    pub async fn send(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Answer> {
        let repeatable = method == Method::GET
            || headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"));
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let auth = self.credential(false).await?;
            let sent = self
                .send_raw(service, method.clone(), path, &body, headers, Some(&auth))
                .await;
            let retry_after = match &sent {
                Ok(answer)
                    if answer.status == StatusCode::UNAUTHORIZED && !refreshed && self.has_session() =>
                {
                    refreshed = true;
                    self.credential(true).await?;
                    continue;
                }
                Ok(answer)
                    if answer.status == StatusCode::SERVICE_UNAVAILABLE
                        || answer.status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    Some(retry_after(&answer.headers, attempt))
                }
                Ok(_) => None,
                Err(_) => Some(retry_after(&HeaderMap::new(), attempt)),
            };
            match retry_after {
                Some(wait) if repeatable && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
                _ => return sent,
            }
        }
    }

    fn has_session(&self) -> bool {
        matches!(*self.credential.lock().unwrap(), Some(Credential::Session(_)))
    }

    /// [`Api::send`], and the answer unless it is an error (then the error).
    pub async fn call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Answer> {
        ok(self.send(service, method, path, body, headers).await?)
    }

    /// A GET on the query API, answered 200.
    pub async fn query(&self, path: &str) -> Result<Answer> {
        self.call(Service::Query, Method::GET, path, Body::None, &[])
            .await
    }

    fn request(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: &Body,
        headers: &[(&str, String)],
        auth: Option<&(&'static str, String)>,
    ) -> RequestBuilder {
        let mut request = self.http.request(method, self.url(service, path));
        if let Some((name, value)) = auth {
            request = request.header(*name, value);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match body {
            Body::None => request,
            Body::Json(value) => request.json(value),
        }
    }

    async fn send_raw(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: &Body,
        headers: &[(&str, String)],
        auth: Option<&(&'static str, String)>,
    ) -> Result<Answer> {
        let response = self
            .request(service, method, path, body, headers, auth)
            .send()
            .await?;
        read(response).await
    }
}

/// How long to wait before attempt `attempt + 1`: `Retry-After` (capped at 5 s), else 0.5 s,
/// then 1 s.
fn retry_after(headers: &HeaderMap, attempt: u32) -> Duration {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(5)))
        .unwrap_or(Duration::from_millis(500 << attempt.min(3)))
}

async fn read(response: Response) -> Result<Answer> {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The answer when it is a success; else its error in the contract's shape (or what came
/// instead, with the status's name as the code).
pub fn ok(answer: Answer) -> Result<Answer> {
    if answer.status.is_success() || answer.status == StatusCode::NOT_MODIFIED {
        return Ok(answer);
    }
    let error = &answer.body["error"];
    let header_id = answer.header("x-request-id").map(str::to_owned);
    let failure = ApiFailure {
        status: answer.status.as_u16(),
        code: error["code"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP_{}", answer.status.as_u16())),
        message: error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| match &answer.body {
                Value::String(text) => text.chars().take(200).collect(),
                _ => answer.status.canonical_reason().unwrap_or("error").to_owned(),
            }),
        details: error.get("details").cloned().unwrap_or(Value::Null),
        request_id: error["request_id"].as_str().map(str::to_owned).or(header_id),
    };
    Err(CliError::Api(failure))
}

/// Percent-encodes a query parameter's value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `?a=1&b=2` from the pairs that have a value (empty when none).
pub fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}
