//! `simctl sims …`: the list (a page, or every page by the keyset cursor), one SIM, and the
//! commands on one SIM with `Idempotency-Key`, `If-Match` and `--wait` (the consistency token).

use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::{CommandOptions, ListArgs, OnOff, SimsCommand};
use crate::client::{encode, query_string, Answer, Api, Body, Service};
use crate::error::{CliError, Result};
use crate::output::{self, Format, Rows};

/// A SIM's fields in a table.
pub const SIM_TABLE: &[&str] = &[
    "iccid",
    "imsi",
    "msisdn",
    "status",
    "pending_change",
    "label",
    "tags",
    "data_remaining",
    "version",
];

/// A SIM's fields in CSV and in `show` (every field of `SimView`, in the API's order).
pub const SIM_FIELDS: &[&str] = &[
    "iccid",
    "imsi",
    "msisdn",
    "label",
    "tags",
    "status",
    "pending_change",
    "provider_status",
    "imei",
    "imei_lock",
    "ip_address",
    "network",
    "country",
    "rat",
    "last_seen_at",
    "data_total",
    "data_remaining",
    "data_expiry",
    "sms_total",
    "sms_remaining",
    "sms_expiry",
    "registered_at",
    "terminated_at",
    "version",
    "last_position",
    "updated_at",
];

/// A command's answer.
const ANSWER_FIELDS: &[&str] = &["command_id", "aggregate_id", "version", "position"];

pub async fn run(api: &Api, format: Format, command: SimsCommand) -> Result<()> {
    match command {
        SimsCommand::List(args) => list(api, format, args).await,
        SimsCommand::Show { iccid } => {
            let sim = api.query(&format!("/sims/{}", encode(&iccid))).await?;
            output::object(format, &sim.body, SIM_FIELDS)
        }
        SimsCommand::Register {
            iccid,
            imsi,
            msisdn,
            label,
            tags,
            options,
        } => {
            let body = json!({"iccid": iccid, "imsi": imsi, "msisdn": msisdn, "label": label, "tags": tags});
            let answer = send_command(api, &options, Method::POST, "/sims", Body::Json(body)).await?;
            finish(api, format, &options, &answer).await
        }
        SimsCommand::Label {
            iccid,
            label,
            clear,
            options,
        } => {
            let label = if clear { Value::Null } else { json!(label) };
            let path = format!("/sims/{}", encode(&iccid));
            let answer = send_command(
                api,
                &options,
                Method::PATCH,
                &path,
                Body::Json(json!({"label": label})),
            )
            .await?;
            finish(api, format, &options, &answer).await
        }
        SimsCommand::Tag {
            iccid,
            add,
            remove,
            options,
        } => tag(api, format, &iccid, &add, &remove, options).await,
        SimsCommand::Activate { iccid, options } => {
            simple(api, format, &iccid, "/activate", Method::POST, options).await
        }
        SimsCommand::Suspend { iccid, options } => {
            simple(api, format, &iccid, "/suspend", Method::POST, options).await
        }
        SimsCommand::Terminate { iccid, options } => {
            simple(api, format, &iccid, "", Method::DELETE, options).await
        }
        SimsCommand::Reset { iccid, options } => {
            simple(api, format, &iccid, "/connectivity-reset", Method::POST, options).await
        }
        SimsCommand::AutoTopup {
            iccid,
            setting,
            options,
        } => {
            let body = json!({"enabled": setting == OnOff::On});
            let path = format!("/sims/{}/auto-topup", encode(&iccid));
            let answer = send_command(api, &options, Method::PUT, &path, Body::Json(body)).await?;
            finish(api, format, &options, &answer).await
        }
        SimsCommand::Topup {
            iccid,
            quota,
            payment_method,
            options,
        } => {
            let body = json!({"quota": quota.name(), "payment_method": payment_method});
            let path = format!("/sims/{}/topup", encode(&iccid));
            let answer = send_command(api, &options, Method::POST, &path, Body::Json(body)).await?;
            finish(api, format, &options, &answer).await
        }
        SimsCommand::Sms {
            iccid,
            text,
            source_address,
            options,
        } => {
            let payload = if text == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                text
            };
            let body = json!({"payload": payload, "source_address": source_address});
            let path = format!("/sims/{}/sms", encode(&iccid));
            let answer = send_command(api, &options, Method::POST, &path, Body::Json(body)).await?;
            finish(api, format, &options, &answer).await
        }
    }
}

async fn list(api: &Api, format: Format, args: ListArgs) -> Result<()> {
    let columns = if format == Format::Table {
        SIM_TABLE
    } else {
        SIM_FIELDS
    };
    let mut rows = Rows::new(format, columns);
    let mut pairs = args.filters.pairs();
    pairs.push(("sort", args.sort.clone()));
    pairs.push(("page_size", Some(args.page_size.to_string())));
    if !args.all {
        pairs.push(("page", args.page.map(|p| p.to_string())));
        let page = api.query(&format!("/sims{}", query_string(&pairs))).await?;
        for sim in page.body.as_array().into_iter().flatten() {
            rows.push(sim)?;
        }
        let total = page.header("x-total-count").unwrap_or("?").to_owned();
        rows.finish()?;
        if format == Format::Table {
            eprintln!("{} of {total} SIMs", page.body.as_array().map_or(0, Vec::len));
        }
        return Ok(());
    }
    // Keyset pages: `after=` (empty) asks for the first page with a cursor; each page names
    // the next one in `X-Next-Cursor`, and the last names none.
    let mut after = String::new();
    loop {
        let mut page_pairs = pairs.clone();
        page_pairs.push(("after", Some(after.clone())));
        let page = api.query(&format!("/sims{}", query_string(&page_pairs))).await?;
        for sim in page.body.as_array().into_iter().flatten() {
            rows.push(sim)?;
        }
        rows.flush()?;
        match page.header("x-next-cursor") {
            Some(next) if !next.is_empty() => after = next.to_owned(),
            _ => break,
        }
    }
    rows.finish()
}

/// Sends a command with its `Idempotency-Key` (and `If-Match` when asked).
async fn send_command(
    api: &Api,
    options: &CommandOptions,
    method: Method,
    path: &str,
    body: Body,
) -> Result<Answer> {
    let key = options
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut headers = vec![("idempotency-key", key)];
    if let Some(version) = options.if_version {
        headers.push(("if-match", format!("\"{version}\"")));
    }
    api.call(Service::Command, method, path, body, &headers).await
}

async fn simple(
    api: &Api,
    format: Format,
    iccid: &str,
    suffix: &str,
    method: Method,
    options: CommandOptions,
) -> Result<()> {
    let path = format!("/sims/{}{suffix}", encode(iccid));
    let answer = send_command(api, &options, method, &path, Body::None).await?;
    finish(api, format, &options, &answer).await
}

/// Prints the command's answer; with `--wait`, waits for its consistency token and prints the
/// SIM as the read models now show it.
async fn finish(api: &Api, format: Format, options: &CommandOptions, answer: &Answer) -> Result<()> {
    if !options.wait {
        return output::object(format, &answer.body, ANSWER_FIELDS);
    }
    let sim = wait_for(api, answer).await?;
    output::object(format, &sim, SIM_FIELDS)
}

/// The SIM of a command's answer once the read models have applied the command.
async fn wait_for(api: &Api, answer: &Answer) -> Result<Value> {
    let position = answer.body["position"].as_i64().ok_or_else(|| {
        CliError::unavailable(format!("the command's answer has no position: {}", answer.body))
    })?;
    let iccid = iccid_of(answer)?;
    let headers = [("x-consistency-token", position.to_string())];
    let sim = api
        .call(
            Service::Query,
            Method::GET,
            &format!("/sims/{iccid}"),
            Body::None,
            &headers,
        )
        .await?;
    Ok(sim.body)
}

/// The SIM a command was about: its aggregate, or (for quota and SMS commands) the ICCID in
/// the location or aggregate id.
fn iccid_of(answer: &Answer) -> Result<String> {
    let aggregate = answer.body["aggregate_id"].as_str().unwrap_or_default();
    let digits: String = aggregate.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() >= 19 {
        return Ok(digits);
    }
    answer
        .header("location")
        .and_then(|l| l.strip_prefix("/api/v1/sims/"))
        .map(|rest| rest.split('/').next().unwrap_or_default().to_owned())
        .ok_or_else(|| CliError::unavailable("cannot tell which SIM the command changed"))
}

/// Tags are one field: read the SIM, change its tags, write them with `If-Match` of the
/// version read; another writer in between (412) means read again.
async fn tag(
    api: &Api,
    format: Format,
    iccid: &str,
    add: &[String],
    remove: &[String],
    options: CommandOptions,
) -> Result<()> {
    if add.is_empty() && remove.is_empty() {
        return Err(CliError::usage("give --add TAG and/or --remove TAG"));
    }
    let path = format!("/sims/{}", encode(iccid));
    for attempt in 0..5 {
        // Postgres, not the cache: a stale version would only cost a retry, but a fresh one
        // costs nothing (`X-Consistency-Token: 0` waits for nothing and skips Redis).
        let headers = [("x-consistency-token", "0".to_owned())];
        let sim = api
            .call(Service::Query, Method::GET, &path, Body::None, &headers)
            .await?;
        let mut tags: Vec<String> = sim.body["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .filter(|t| !remove.contains(t))
            .collect();
        for tag in add {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        let version = options.if_version.or(sim.body["version"].as_i64());
        let mut this = options.clone();
        this.if_version = version;
        match send_command(
            api,
            &this,
            Method::PATCH,
            &path,
            Body::Json(json!({"tags": tags})),
        )
        .await
        {
            Err(CliError::Api(failure))
                if failure.status == StatusCode::PRECONDITION_FAILED.as_u16()
                    && options.if_version.is_none()
                    && attempt < 4 =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
            }
            Err(other) => return Err(other),
            Ok(answer) => return finish(api, format, &options, &answer).await,
        }
    }
    Err(CliError::unavailable(format!(
        "SIM {iccid} kept changing while its tags were written; try again"
    )))
}
