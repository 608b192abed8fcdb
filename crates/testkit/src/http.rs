//! The contract's answers, checked.

use std::future::Future;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// Reads an error answer and checks the contract's shape (`{"error": {code, message, details,
/// request_id}}`, the request id also in `X-Request-Id`); returns the error object.
pub async fn error_body(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for {code}");
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-Id on every answer")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON error body");
    let error = &body["error"];
    assert_eq!(error["code"], code, "body: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    assert!(error["details"].is_object(), "body: {body}");
    assert_eq!(error["request_id"], request_id.as_str(), "body: {body}");
    error.clone()
}

/// `request` with `body` as its JSON body when there is one.
pub fn with_json(request: RequestBuilder, body: Option<&Value>) -> RequestBuilder {
    match body {
        Some(body) => request.json(body),
        None => request,
    }
}

/// An answer read whole: what was asked (`METHOD url`, for messages), the status, the headers
/// and the JSON body (`Null` when the body is empty).
#[derive(Debug)]
pub struct Answer {
    pub request: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Reads `response` whole; a body that is neither empty nor JSON fails the test.
    async fn read(request: String, response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("the answer's body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                panic!(
                    "{request}: a JSON body ({error}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Self {
            request,
            status,
            headers,
            body,
        }
    }

    /// Asserts the status (the message names the request and shows the body).
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "{}: {}", self.request, self.body);
        self
    }

    /// The header's value as text; a missing header fails the test.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("{}: no {name} header", self.request))
            .to_str()
            .unwrap()
    }
}

/// A request sent and its answer checked in one step (implemented for `reqwest`'s builder).
pub trait Exchange {
    /// Sends the request; the answer as it came, unchecked (for what the helpers below do not
    /// read, such as the exact bytes of the body).
    fn response(self) -> impl Future<Output = Response> + Send;
    /// Sends the request and reads the whole answer, unchecked.
    fn answer(self) -> impl Future<Output = Answer> + Send;
    /// Sends the request, asserts the answer's status and returns the answer.
    fn expect_answer(self, status: StatusCode) -> impl Future<Output = Answer> + Send;
    /// Sends the request, asserts the answer's status and returns its JSON body.
    fn expect(self, status: StatusCode) -> impl Future<Output = Value> + Send;
}

impl Exchange for RequestBuilder {
    async fn response(self) -> Response {
        self.send().await.expect("the request is answered")
    }

    async fn answer(self) -> Answer {
        let (client, request) = self.build_split();
        let request = request.expect("a well-formed request");
        let asked = format!("{} {}", request.method(), request.url());
        let response = client.execute(request).await.expect("the request is answered");
        Answer::read(asked, response).await
    }

    async fn expect_answer(self, status: StatusCode) -> Answer {
        self.answer().await.expect(status)
    }

    async fn expect(self, status: StatusCode) -> Value {
        self.expect_answer(status).await.body
    }
}

/// Sends `request` and checks its error answer with [`error_body`]; returns the error object.
pub async fn expect_error(request: RequestBuilder, status: StatusCode, code: &str) -> Value {
    error_body(request.response().await, status, code).await
}
