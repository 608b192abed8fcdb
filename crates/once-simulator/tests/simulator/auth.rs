//! OAuth client credentials and bearer tokens.

use std::time::Duration;

use crate::common::{quiet, start, start_connected, token_request};
use reqwest::Response;
use serde_json::{json, Value};

#[tokio::test]
async fn good_credentials_give_a_bearer_token_that_opens_v1() {
    let running = start(quiet(5)).await;
    let http = reqwest::Client::new();
    let response = token_request(&http, &running.base_url()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status_code"], 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["user_id"], "simulator");
    assert_eq!(body["score"], "all");
    let token = body["access_token"].as_str().unwrap();
    let sims = http
        .get(format!("{}/v1/sims", running.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(sims.status(), 200);
}

/// A token request with these Basic credentials (`None`: no `Authorization` header) and body.
async fn ask(http: &reqwest::Client, url: &str, credentials: Option<(&str, &str)>, body: &Value) -> Response {
    let mut request = http.post(url);
    if let Some((user, secret)) = credentials {
        request = request.basic_auth(user, Some(secret));
    }
    request.json(body).send().await.unwrap()
}

#[tokio::test]
async fn bad_credentials_and_bad_requests_are_refused() {
    let running = start(quiet(1)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/oauth/token", running.base_url());
    let grant = json!({"grant_type": "client_credentials"});
    let good = Some(("simulator", "simulator-secret"));

    let wrong_secret = ask(&http, &url, Some(("simulator", "nope")), &grant).await;
    assert_eq!(wrong_secret.status(), 401);
    let body: Value = wrong_secret.json().await.unwrap();
    assert_eq!(body["errorCode"], "BadCredentials");

    let unknown_user = ask(&http, &url, Some(("someone", "x")), &grant).await;
    assert_eq!(
        unknown_user.status(),
        400,
        "the documents answer 400 for a user that does not exist"
    );
    let body: Value = unknown_user.json().await.unwrap();
    assert_eq!(body["message"], "User does not exist.");

    let no_auth = ask(&http, &url, None, &grant).await;
    assert_eq!(no_auth.status(), 400);
    assert_eq!(
        no_auth.json::<Value>().await.unwrap()["errorCode"],
        "AuthValidationError"
    );

    let wrong_grant = ask(&http, &url, good, &json!({"grant_type": "password"})).await;
    assert_eq!(wrong_grant.status(), 400);
    assert_eq!(
        wrong_grant.json::<Value>().await.unwrap()["errorCode"],
        "BodyValidationError"
    );

    let no_grant = ask(&http, &url, good, &json!({})).await;
    assert_eq!(no_grant.status(), 400);

    let stats = running.simulator.stats();
    assert_eq!(stats.count("POST", "/oauth/token"), 5);
    assert_eq!(stats.count_status("POST", "/oauth/token", 401), 1);
}

#[tokio::test]
async fn v1_without_a_valid_token_answers_401_with_a_message() {
    let running = start(quiet(3)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/sims", running.base_url());
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.json::<Value>().await.unwrap()["message"].is_string());
    let forged = http
        .get(&url)
        .bearer_auth("sim.not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_new_ones_do() {
    let (running, mut api) = start_connected(quiet(3)).await;
    assert_eq!(api.get("/v1/sims").await.status(), 200);
    running.simulator.revoke_tokens();
    assert_eq!(api.get("/v1/sims").await.status(), 401);
    api.token = crate::common::token(&api.http, &api.base).await;
    assert_eq!(api.get("/v1/sims").await.status(), 200);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let running = start(quiet(3)).await;
    running.simulator.set_token_ttl(Duration::from_secs(1));
    let http = reqwest::Client::new();
    let answer: Value = token_request(&http, &running.base_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["expires_in"], 1);
    let token = answer["access_token"].as_str().unwrap();
    let url = format!("{}/v1/sims", running.base_url());
    assert_eq!(
        http.get(&url).bearer_auth(token).send().await.unwrap().status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        http.get(&url).bearer_auth(token).send().await.unwrap().status(),
        401
    );
}
