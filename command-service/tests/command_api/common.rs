//! What the suites share: the command API on its real start path, ids, the error shape, and
//! requests sent and checked in one step.

pub use testkit::apps::ADMIN;
pub use testkit::http::{expect_error, Exchange};
pub use testkit::{error_body, iccid, with_luhn, CommandApi};

use reqwest::{RequestBuilder, StatusCode};

/// A request the API must refuse, the status and error code it answers, and a word the error's
/// `details.reason` must name (if any).
pub type Refusal<'a> = (RequestBuilder, (StatusCode, &'a str), Option<&'a str>);

/// Sends each request in turn and checks its error answer ([`expect_error`]) and reason.
pub async fn expect_refusals<'a>(refusals: impl IntoIterator<Item = Refusal<'a>>) {
    for (request, (status, code), reason) in refusals {
        let error = expect_error(request, status, code).await;
        if let Some(word) = reason {
            let named = error["details"]["reason"].as_str().unwrap().contains(word);
            assert!(named, "{error}");
        }
    }
}
