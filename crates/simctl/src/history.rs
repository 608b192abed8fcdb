//! For auditors, from the query API's event-store routes: a SIM's history
//! (`GET /sims/{iccid}/events`, every page), its state at an instant
//! (`GET /sims/{iccid}/state?as_of=`), and the difference of two such states field by field.

use serde_json::{json, Value};

use crate::cli::{DiffArgs, HistoryArgs, StateArgs};
use crate::client::{encode, query_string, Api};
use crate::error::{CliError, Result};
use crate::output::{self, Format, Rows};
use crate::sims::SIM_FIELDS;

/// An event in a table (JSON keeps the whole envelope).
pub const EVENT_TABLE: &[&str] = &[
    "position",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "actor",
];

/// An event in CSV.
pub const EVENT_CSV: &[&str] = &[
    "position",
    "transaction_id",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "iccid",
    "actor",
    "metadata",
    "payload",
];

/// An event row: the envelope, with the actor lifted out of the metadata for tables.
pub fn event_row(event: &Value) -> Value {
    let mut row = event.clone();
    if let Some(map) = row.as_object_mut() {
        map.insert("actor".into(), event["metadata"]["actor"].clone());
    }
    row
}

pub fn event_columns(format: Format) -> &'static [&'static str] {
    if format == Format::Table {
        EVENT_TABLE
    } else {
        EVENT_CSV
    }
}

pub async fn history(api: &Api, format: Format, args: HistoryArgs) -> Result<()> {
    let mut rows = Rows::new(format, event_columns(format));
    read_log(api, Some(&args.iccid), args.after, |event| {
        rows.push(&without_actor(format, event_row(event)))
    })
    .await?;
    rows.finish()
}

/// Every stored event after `after`, in the global log's order, a page at a time: one SIM's
/// (`GET /sims/{iccid}/events`) or the whole log's (`GET /events`).
pub async fn read_log(
    api: &Api,
    iccid: Option<&str>,
    after: i64,
    mut each: impl FnMut(&Value) -> Result<()>,
) -> Result<()> {
    read_log_until(api, iccid, after, |event| each(event).map(|()| true)).await
}

/// [`read_log`], stopping once `each` answers `false`.
pub async fn read_log_until(
    api: &Api,
    iccid: Option<&str>,
    mut after: i64,
    mut each: impl FnMut(&Value) -> Result<bool>,
) -> Result<()> {
    loop {
        let path = match iccid {
            Some(iccid) => format!("/sims/{}/events?after_position={after}&limit=1000", encode(iccid)),
            None => format!("/events?after={after}&limit=1000"),
        };
        let page = api.query(&path).await?;
        let events = page.body["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            if !each(event)? {
                return Ok(());
            }
        }
        let next = page.body["next_after"].as_i64().unwrap_or(after);
        if events.is_empty() || next == after {
            return Ok(());
        }
        after = next;
    }
}

/// JSON keeps the API's envelope as it is; `actor` is only a table and CSV column.
fn without_actor(format: Format, mut row: Value) -> Value {
    if matches!(format, Format::Json | Format::Jsonl) {
        if let Some(map) = row.as_object_mut() {
            map.remove("actor");
        }
    }
    row
}

async fn state_at(api: &Api, iccid: &str, as_of: Option<&str>) -> Result<Value> {
    let query = query_string(&[("as_of", as_of.map(str::to_owned))]);
    Ok(api
        .query(&format!("/sims/{}/state{query}", encode(iccid)))
        .await?
        .body)
}

pub async fn state(api: &Api, format: Format, args: StateArgs) -> Result<()> {
    let view = state_at(api, &args.iccid, args.as_of.as_deref()).await?;
    output::object(format, &view, SIM_FIELDS)
}

/// The SIM at an instant, or `None` when it was not registered yet (`404 SIM_NOT_FOUND`).
async fn state_or_absent(api: &Api, iccid: &str, at: &str) -> Result<Option<Value>> {
    match state_at(api, iccid, Some(at)).await {
        Ok(view) => Ok(Some(view)),
        Err(CliError::Api(failure)) if failure.status == 404 && failure.code == "SIM_NOT_FOUND" => Ok(None),
        Err(other) => Err(other),
    }
}

/// The fields that differ between the SIM at `from` and at `to` (every field with
/// `--all-fields`); a SIM not registered yet at an instant has every field empty there.
pub async fn diff(api: &Api, format: Format, args: DiffArgs) -> Result<()> {
    let before = state_or_absent(api, &args.iccid, &args.from).await?;
    let after = state_or_absent(api, &args.iccid, &args.to).await?;
    if before.is_none() && after.is_none() {
        return Err(CliError::Api(crate::error::ApiFailure {
            status: 404,
            code: "SIM_NOT_FOUND".into(),
            message: format!("SIM {} was registered at neither instant", args.iccid),
            details: Value::Null,
            request_id: None,
        }));
    }
    let (before, after) = (before.unwrap_or(Value::Null), after.unwrap_or(Value::Null));
    let mut fields: Vec<String> = SIM_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    for side in [&before, &after] {
        for key in side.as_object().into_iter().flat_map(|m| m.keys()) {
            if !fields.contains(key) {
                fields.push(key.clone());
            }
        }
    }
    let changes: Vec<Value> = fields
        .iter()
        .filter(|f| args.all_fields || before[f.as_str()] != after[f.as_str()])
        .map(|f| json!({"field": f, "from": before[f.as_str()], "to": after[f.as_str()], "changed": before[f.as_str()] != after[f.as_str()]}))
        .collect();
    match format {
        Format::Json => {
            let document = json!({"iccid": args.iccid, "from": args.from, "to": args.to, "changes": changes});
            output::object(format, &document, &[])
        }
        _ => {
            let mut rows = Rows::new(format, &["field", "from", "to"]);
            for change in &changes {
                rows.push(change)?;
            }
            rows.finish()?;
            if format == Format::Table && changes.is_empty() {
                eprintln!("no field changed between {} and {}", args.from, args.to);
            }
            Ok(())
        }
    }
}
