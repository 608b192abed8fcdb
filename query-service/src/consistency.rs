//! `X-Consistency-Token: <position>`: a query answers only once the read models have applied
//! that position of the global log (or 503 after a bounded wait).
//!
//! A position alone is not a cursor (positions are drawn at insert, not at commit), so the
//! token is turned into the global log's (transaction id, position) pair and compared as a
//! pair with the projectors' checkpoint.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use axum::http::request::Parts;
use eventstore::{LogCursor, StoreError};
use platform::{ApiError, Principal, Role};
use serde_json::json;

use crate::state::AppState;

pub const CONSISTENCY_TOKEN: HeaderName = HeaderName::from_static("x-consistency-token");

/// Every query handler takes one, after its path and query extractors: it authenticates
/// (viewer or above), then, with a consistency token, waits for the read models.
#[derive(Debug, Clone)]
pub struct ConsistentRead {
    #[allow(dead_code)]
    pub principal: Principal,
    /// A consistency token was given and reached: read Postgres, not the cache (a cached entry
    /// may predate the token's event if its invalidation has not happened yet).
    pub fresh: bool,
}

impl FromRequestParts<AppState> for ConsistentRead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require(Role::Viewer)?;
        let Some(raw) = parts.headers.get(&CONSISTENCY_TOKEN) else {
            return Ok(Self {
                principal,
                fresh: false,
            });
        };
        let position = parse_token(raw)?;
        wait_for(state, position).await?;
        Ok(Self {
            principal,
            fresh: true,
        })
    }
}

fn invalid_token(reason: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_CONSISTENCY_TOKEN",
        "X-Consistency-Token must be a position answered by the command API",
    )
    .with_details(json!({ "reason": reason }))
}

fn parse_token(raw: &HeaderValue) -> Result<i64, ApiError> {
    let text = raw.to_str().map_err(|_| invalid_token("not ASCII"))?.trim();
    let position: i64 = text.parse().map_err(|_| invalid_token("not a whole number"))?;
    if position < 0 {
        return Err(invalid_token("negative"));
    }
    Ok(position)
}

/// Polls the checkpoint until it reaches the token's event, or answers 503 after the
/// configured wait.
async fn wait_for(state: &AppState, position: i64) -> Result<(), ApiError> {
    if position == 0 {
        return Ok(()); // the start of the log: nothing to wait for
    }
    let cursor = match state.log.cursor_at(position).await {
        Ok(cursor) => cursor,
        Err(StoreError::UnknownPosition(_)) => {
            return Err(ApiError::bad_request(
                "INVALID_CONSISTENCY_TOKEN",
                format!("no event at position {position}"),
            )
            .with_details(json!({ "reason": "unknown position", "position": position })))
        }
        Err(error) => return Err(error.into()),
    };
    let settings = &state.consistency;
    let started = Instant::now();
    let deadline = started + settings.max_wait;
    loop {
        if reached(state, cursor).await? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            state.consistency_timeouts.inc();
            return Err(ApiError::service_unavailable(
                "CONSISTENCY_TIMEOUT",
                format!(
                    "the read models did not reach position {position} within {} ms; retry later",
                    settings.max_wait.as_millis()
                ),
            )
            .with_details(json!({
                "position": position,
                "waited_ms": started.elapsed().as_millis() as u64,
            }))
            .with_header(RETRY_AFTER, HeaderValue::from_static("1")));
        }
        tokio::time::sleep(settings.poll.min(deadline - now)).await;
    }
}

async fn reached(state: &AppState, cursor: LogCursor) -> Result<bool, ApiError> {
    // Every partition of the projector's layout (one, named as the projector, unless it is
    // partitioned) must have passed the token: each applies its SIMs' events and moves over
    // the others', so together they hold exactly the events before it.
    // With TimescaleDB, late usage rows of the events before the token must also have reached
    // the continuous aggregates (the projector refreshes their days right after committing
    // them; `usage_rollup_refreshes` is always empty on plain Postgres). The projectors own
    // those tables; `projection_reached` is their interface for this question.
    let reached: bool = sqlx::query_scalar("SELECT projection_reached($1, $2::text::xid8, $3)")
        .bind(&state.consistency.projector)
        .bind(cursor.transaction_id.to_string())
        .bind(cursor.position)
        .fetch_one(&state.pool)
        .await?;
    Ok(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_non_negative_positions() {
        assert_eq!(parse_token(&HeaderValue::from_static(" 42 ")).unwrap(), 42);
        assert_eq!(parse_token(&HeaderValue::from_static("0")).unwrap(), 0);
        for bad in ["-1", "abc", "", "1.5", "99999999999999999999"] {
            let error = parse_token(&HeaderValue::from_static(bad)).unwrap_err();
            assert_eq!(error.code, "INVALID_CONSISTENCY_TOKEN", "{bad}");
        }
    }
}
