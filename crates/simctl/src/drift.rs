//! `audit verify --against-platform`, the read models: for every SIM of the chain, what the
//! query API serves is compared row by row and field by field with a replay of the SIM's whole
//! history (read from the live log):
//!
//! - `sims`: the SIM's row (`GET /sims/{iccid}`) against the query API's own replay
//!   (`GET /sims/{iccid}/state`, the domain's aggregates);
//! - `sim_quotas`, `sms_messages`, `sim_connectivity_history`, `sim_usage_hourly` and
//!   `sim_usage_daily` (`GET /sims/{iccid}/quotas|sms|connectivity|usage`): against simctl's
//!   own replay of the events through the projectors' fold (`projectors::replay`), so a row
//!   changed, added or deleted behind the projectors' back is found whatever the platform's
//!   code says.
//!
//! Every read waits for the projectors to have applied the SIM's last event (the consistency
//! token). Usage is compared bucket by bucket from the SIM's first usage or registration (the
//! earlier) until now. `sim_status_history` is not served by any API, so not compared.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use eventstore::StoredEvent;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{encode, Api, Body, Service};
use crate::error::{CliError, Result};
use crate::history::read_log;

/// What one SIM's comparison found, appended to `problems`.
pub async fn compare_sim(api: &Api, iccid: &str, token: i64, problems: &mut Vec<Value>) -> Result<()> {
    let mut history: Vec<StoredEvent> = Vec::new();
    read_log(api, Some(iccid), 0, |event| {
        let event = serde_json::from_value(event.clone())
            .map_err(|e| CliError::usage(format!("an event of the log does not parse: {e}")))?;
        history.push(event);
        Ok(())
    })
    .await?;
    let token = history.iter().map(|e| e.position).max().unwrap_or(0).max(token);
    let replayed = projectors::replay(&history);
    for (aggregate_type, aggregate_id, version, sequence) in &replayed.gaps {
        problems.push(json!({
            "kind": "removed",
            "at": iccid,
            "detail": format!(
                "the log of {aggregate_type} {aggregate_id} goes from sequence {version} to {sequence}: events are missing"
            ),
        }));
    }
    let reader = Reader { api, iccid, token };
    let mut drift = Drift { iccid, problems };

    let row = reader.get(&format!("/sims/{iccid}")).await?;
    let state = reader.get(&format!("/sims/{iccid}/state")).await?;
    drift.compare_rows(
        "sims",
        keyed(state.into_iter().collect(), |_| "row".to_owned()),
        keyed(row.into_iter().collect(), |_| "row".to_owned()),
    );

    let quotas = reader.get(&format!("/sims/{iccid}/quotas")).await?;
    drift.compare_rows(
        "sim_quotas",
        keyed(
            replayed
                .quotas
                .values()
                .filter(|q| q.iccid == iccid)
                .map(to_value)
                .collect(),
            |q| text(&q["kind"]),
        ),
        keyed(list(quotas), |q| text(&q["kind"])),
    );

    drift.compare_rows(
        "sms_messages",
        keyed(
            replayed
                .sms
                .iter()
                .filter(|m| m.iccid == iccid)
                .map(to_value)
                .collect(),
            |m| text(&m["message_id"]),
        ),
        keyed(reader.sms().await?, |m| text(&m["message_id"])),
    );

    drift.compare_rows(
        "sim_connectivity_history",
        keyed(
            replayed
                .connectivity
                .iter()
                .filter(|c| c.iccid == iccid)
                .map(to_value)
                .collect(),
            |c| text(&c["position"]),
        ),
        keyed(reader.connectivity().await?, |c| text(&c["position"])),
    );

    let registered = replayed
        .sims
        .get(iccid)
        .map(|s| s.registered_at)
        .unwrap_or_else(Utc::now);
    for (model, granularity, width, window) in [
        (
            "sim_usage_hourly",
            "hour",
            TimeDelta::hours(1),
            TimeDelta::days(31),
        ),
        ("sim_usage_daily", "day", TimeDelta::days(1), TimeDelta::days(366)),
    ] {
        let expected = replayed.usage_buckets(iccid, width);
        let first = expected
            .keys()
            .next()
            .copied()
            .unwrap_or(registered)
            .min(registered);
        let from = first.duration_trunc(width).unwrap_or(first);
        let to = Utc::now() + width;
        let actual = reader.usage(granularity, from, to, window).await?;
        let rows = |sums: BTreeMap<DateTime<Utc>, [i64; 3]>| -> BTreeMap<String, Value> {
            sums.into_iter()
                .map(|(bucket, [data, mo, mt])| {
                    (
                        bucket.to_rfc3339(),
                        json!({"data_bytes": data, "sms_mo": mo, "sms_mt": mt}),
                    )
                })
                .collect()
        };
        drift.compare_rows(model, rows(expected), rows(actual));
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(row: &T) -> Value {
    serde_json::to_value(row).unwrap_or(Value::Null)
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(value: Option<Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn keyed(rows: Vec<Value>, key: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    rows.into_iter().map(|row| (key(&row), row)).collect()
}

/// Equal values; times equal to the microsecond (what Postgres keeps of an event's nanoseconds).
fn same(expected: &Value, actual: &Value) -> bool {
    if expected == actual {
        return true;
    }
    let instant = |v: &Value| {
        v.as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .map(|t| t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t))
    };
    match (instant(expected), instant(actual)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The SIM's differences, as problems of kind `read_model`.
struct Drift<'a> {
    iccid: &'a str,
    problems: &'a mut Vec<Value>,
}

impl Drift<'_> {
    fn report(&mut self, model: &str, key: &str, field: Option<&str>, expected: &Value, actual: &Value) {
        let detail = match field {
            Some(field) if model == "sims" => {
                format!("sims.{field} is {actual} in the read model, {expected} in the replay")
            }
            Some(field) => {
                format!("{model}[{key}].{field} is {actual} in the read model, {expected} in the replay")
            }
            None if actual.is_null() => format!("{model}[{key}] is in the replay, not in the read model"),
            None => format!("{model}[{key}] is in the read model, not in the replay"),
        };
        self.problems.push(json!({
            "kind": "read_model",
            "at": self.iccid,
            "model": model,
            "key": key,
            "field": field,
            "expected": expected,
            "actual": actual,
            "detail": detail,
        }));
    }

    fn compare_rows(
        &mut self,
        model: &str,
        expected: BTreeMap<String, Value>,
        actual: BTreeMap<String, Value>,
    ) {
        let keys: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
        for key in keys {
            match (expected.get(key), actual.get(key)) {
                (Some(e), Some(a)) => {
                    let fields: BTreeSet<&String> = [e, a]
                        .iter()
                        .filter_map(|v| v.as_object())
                        .flat_map(Map::keys)
                        .collect();
                    for field in fields {
                        if !same(&e[field], &a[field]) {
                            self.report(model, key, Some(field), &e[field], &a[field]);
                        }
                    }
                }
                (Some(e), None) => self.report(model, key, None, e, &Value::Null),
                (None, Some(a)) => self.report(model, key, None, &Value::Null, a),
                (None, None) => {}
            }
        }
    }
}

/// Reads of one SIM's read models, each after the projectors applied `token`.
struct Reader<'a> {
    api: &'a Api,
    iccid: &'a str,
    token: i64,
}

impl Reader<'_> {
    /// A `404` as `None`.
    async fn get(&self, path: &str) -> Result<Option<Value>> {
        let headers = [("x-consistency-token", self.token.to_string())];
        match self
            .api
            .call(Service::Query, Method::GET, path, Body::None, &headers)
            .await
        {
            Ok(answer) => Ok(Some(answer.body)),
            Err(CliError::Api(failure)) if failure.status == 404 => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Every message, every page.
    async fn sms(&self) -> Result<Vec<Value>> {
        const PAGE: usize = 500;
        let mut all = Vec::new();
        for page in 1.. {
            let rows = list(
                self.get(&format!("/sims/{}/sms?page={page}&page_size={PAGE}", self.iccid))
                    .await?,
            );
            let short = rows.len() < PAGE;
            all.extend(rows);
            if short {
                break;
            }
        }
        Ok(all)
    }

    /// Every change, every page.
    async fn connectivity(&self) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get(&format!(
                    "/sims/{}/connectivity?after={after}&limit=1000",
                    self.iccid
                ))
                .await?
                .unwrap_or(Value::Null);
            let changes = list(Some(page["changes"].clone()));
            if changes.is_empty() {
                return Ok(all);
            }
            after = page["next_after"].as_i64().unwrap_or(after);
            all.extend(changes);
        }
    }

    /// The buckets over [from, to), in windows the API accepts.
    async fn usage(
        &self,
        granularity: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        window: TimeDelta,
    ) -> Result<BTreeMap<DateTime<Utc>, [i64; 3]>> {
        let mut sums = BTreeMap::new();
        let mut start = from;
        while start < to {
            let end = (start + window).min(to);
            let answer = self
                .get(&format!(
                    "/sims/{}/usage?granularity={granularity}&from={}&to={}",
                    self.iccid,
                    encode(&start.to_rfc3339()),
                    encode(&end.to_rfc3339())
                ))
                .await?
                .unwrap_or(Value::Null);
            for point in list(Some(answer["points"].clone())) {
                let Some(bucket) = point["bucket"]
                    .as_str()
                    .and_then(|b| DateTime::parse_from_rfc3339(b).ok())
                else {
                    continue;
                };
                // A bucket straddling a window's edge comes in both windows.
                sums.insert(
                    bucket.with_timezone(&Utc),
                    [
                        point["data_bytes"].as_i64().unwrap_or(0),
                        point["sms_mo"].as_i64().unwrap_or(0),
                        point["sms_mt"].as_i64().unwrap_or(0),
                    ],
                );
            }
            start = end;
        }
        Ok(sums)
    }
}
