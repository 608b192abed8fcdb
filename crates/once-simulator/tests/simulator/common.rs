//! Shared helpers: a simulator on a free port and a small authenticated HTTP client.

use once_simulator::{RunningSimulator, Simulator, SimulatorConfig};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A fleet where nothing changes by itself, under the default rate limits (10 `/v1/sims…`
/// requests per second).
pub fn quiet_with_limits(sims: usize) -> SimulatorConfig {
    SimulatorConfig {
        sims,
        autonomous: false,
        ..Default::default()
    }
}

/// A quiet fleet: nothing changes by itself, no rate limit (tests about limits set their own).
pub fn quiet(sims: usize) -> SimulatorConfig {
    SimulatorConfig {
        sims_rate_limit_per_sec: 0,
        ..quiet_with_limits(sims)
    }
}

pub async fn start(config: SimulatorConfig) -> RunningSimulator {
    Simulator::spawn(config).await.expect("simulator starts")
}

/// [`start`], and a client connected to it.
pub async fn start_connected(config: SimulatorConfig) -> (RunningSimulator, Api) {
    let running = start(config).await;
    let api = Api::connect(&running).await;
    (running, api)
}

/// A quiet fleet of `sims` ([`quiet`]), a client connected to it, and the ICCID of its SIM at
/// `index` (in ICCID order).
pub async fn start_quiet_with_iccid(sims: usize, index: usize) -> (RunningSimulator, Api, String) {
    let (running, api) = start_connected(quiet(sims)).await;
    let iccid = running.simulator.iccids()[index].clone();
    (running, api, iccid)
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// `POST /oauth/token` with the simulator's client credentials, ready to send.
pub fn token_request(http: &reqwest::Client, base: &str) -> RequestBuilder {
    http.post(format!("{base}/oauth/token"))
        .basic_auth("simulator", Some("simulator-secret"))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
}

pub async fn token(http: &reqwest::Client, base: &str) -> String {
    let answer: Value = token_request(http, base)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

impl Api {
    pub async fn connect(running: &RunningSimulator) -> Self {
        let http = reqwest::Client::new();
        let base = running.base_url();
        let token = token(&http, &base).await;
        Self { http, base, token }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// A request without a body, whatever it answers.
    pub async fn send(&self, method: Method, path: &str) -> Response {
        self.request(method, path).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path).await
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// GET whose JSON answer is parsed as `T`, whatever the status.
    pub async fn get_body<T: DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.unwrap()
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path).json(body).send().await.unwrap()
    }

    /// `POST /v1/sims/{iccid}/sms` (an MT SMS) with `body`, whatever it answers.
    pub async fn send_sms(&self, iccid: &str, body: &Value) -> Response {
        self.send_json(Method::POST, &format!("/v1/sims/{iccid}/sms"), body)
            .await
    }

    /// `POST /v1/sims`: the changes of several SIMs at once (all or nothing), whatever it
    /// answers.
    pub async fn update_sims(&self, changes: &Value) -> Response {
        self.send_json(Method::POST, "/v1/sims", changes).await
    }
}

pub fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}
