//! `simctl bulk …`: submits a bulk job (`POST /bulk-jobs`) from a CSV, stdin, ICCIDs or a
//! filter, follows its progress (a progress line on stderr when it is a terminal), prints
//! every item's outcome, and exits 4 when any item was refused, failed or cancelled.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::cli::{BulkAction, BulkCommand, BulkRunArgs};
use crate::client::{encode, Api, Body, Service};
use crate::error::{CliError, Result};
use crate::output::{self, Format, Progress, Rows};

const JOB_FIELDS: &[&str] = &[
    "id",
    "action",
    "status",
    "dry_run",
    "total",
    "done",
    "applied",
    "would_apply",
    "refused",
    "failed",
    "cancelled",
    "created_at",
    "finished_at",
];

const ITEM_FIELDS: &[&str] = &[
    "seq",
    "iccid",
    "outcome",
    "code",
    "message",
    "provider_outcome",
    "position",
];

/// Items per page when reading outcomes (the API's most).
const ITEMS_PAGE: u32 = 1000;

pub async fn run(api: &Api, format: Format, command: BulkCommand) -> Result<()> {
    match command {
        BulkCommand::Run(args) => {
            let detach = args.detach;
            let accepted = submit(api, args).await?;
            let id = accepted["id"]
                .as_str()
                .ok_or_else(|| CliError::unavailable(format!("the job's answer has no id: {accepted}")))?
                .to_owned();
            if detach {
                return output::object(
                    format,
                    &accepted,
                    &["id", "status", "total", "dry_run", "location"],
                );
            }
            eprintln!("bulk job {id}: {} SIMs", accepted["total"]);
            follow(api, format, &id).await
        }
        BulkCommand::Show { id } => {
            let job = api
                .call(Service::Command, Method::GET, &job_path(&id), Body::None, &[])
                .await?;
            output::object(format, &job.body, JOB_FIELDS)
        }
        BulkCommand::Wait { id } => follow(api, format, &id).await,
        BulkCommand::Cancel { id } => {
            let path = format!("{}/cancel", job_path(&id));
            let job = api
                .call(Service::Command, Method::POST, &path, Body::None, &[])
                .await?;
            output::object(format, &job.body, JOB_FIELDS)
        }
    }
}

fn job_path(id: &str) -> String {
    format!("/bulk-jobs/{}", encode(id))
}

async fn submit(api: &Api, args: BulkRunArgs) -> Result<Value> {
    let mut body = Map::new();
    body.insert("action".into(), json!(args.action.api_name()));
    body.insert("params".into(), Value::Object(params(&args)?));
    body.insert("dry_run".into(), json!(args.dry_run));
    let targets = usize::from(!args.iccids.is_empty())
        + usize::from(!args.filter.is_empty())
        + usize::from(args.file.is_some());
    if targets > 1 {
        return Err(CliError::usage("give one target: --file, --iccid or --filter"));
    }
    if !args.iccids.is_empty() {
        body.insert("iccids".into(), json!(args.iccids));
    } else if !args.filter.is_empty() {
        let filter: Map<String, Value> = args.filter.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        body.insert("filter".into(), Value::Object(filter));
    } else {
        body.insert("csv".into(), json!(read_csv(args.file.as_deref())?));
    }
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let answer = api
        .call(
            Service::Command,
            Method::POST,
            "/bulk-jobs",
            Body::Json(Value::Object(body)),
            &[("idempotency-key", key)],
        )
        .await?;
    Ok(answer.body)
}

/// The CSV text of `--file` (`-`: stdin), or stdin when it is not a terminal.
fn read_csv(file: Option<&std::path::Path>) -> Result<String> {
    let from_stdin = match file {
        Some(path) if path.as_os_str() != "-" => {
            return std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
        }
        Some(_) => true,
        None => !std::io::stdin().is_terminal(),
    };
    if !from_stdin {
        return Err(CliError::usage(
            "no target: give --file, --iccid or --filter, or pipe a CSV on stdin",
        ));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    if text.trim().is_empty() {
        return Err(CliError::usage("the CSV on stdin is empty"));
    }
    Ok(text)
}

/// The action's `params`, checked for what it needs (the API checks the values).
fn params(args: &BulkRunArgs) -> Result<Map<String, Value>> {
    let mut params = Map::new();
    match args.action {
        BulkAction::TopUp => {
            if let Some(quota) = args.quota {
                params.insert("quota".into(), json!(quota.name()));
            }
            if let Some(method) = &args.payment_method {
                params.insert("payment_method".into(), json!(method));
            }
        }
        BulkAction::SendSms => {
            let payload = args
                .payload
                .as_ref()
                .ok_or_else(|| CliError::usage("send-sms needs --payload TEXT"))?;
            params.insert("payload".into(), json!(payload));
            if let Some(source) = &args.source_address {
                params.insert("source_address".into(), json!(source));
            }
        }
        BulkAction::SetLabel => {
            let label = match (&args.label, args.clear_label) {
                (Some(label), _) => json!(label),
                (None, true) => Value::Null,
                (None, false) => {
                    return Err(CliError::usage("set-label needs --label TEXT or --clear-label"))
                }
            };
            params.insert("label".into(), label);
        }
        BulkAction::AddTags | BulkAction::RemoveTags => {
            if args.tags.is_empty() {
                return Err(CliError::usage("add-tags and remove-tags need --tag TAG"));
            }
            params.insert("tags".into(), json!(args.tags));
        }
        BulkAction::Activate | BulkAction::Suspend | BulkAction::Terminate | BulkAction::Sync => {}
    }
    Ok(params)
}

/// Polls the job until nothing is left to run, then prints its items.
async fn follow(api: &Api, format: Format, id: &str) -> Result<()> {
    let progress = Progress::new();
    let job = loop {
        let job = api
            .call(Service::Command, Method::GET, &job_path(id), Body::None, &[])
            .await?
            .body;
        let count = |field: &str| job[field].as_u64().unwrap_or(0);
        progress.show(
            count("done") + count("cancelled"),
            count("total"),
            &format!(
                "applied {} would_apply {} refused {} failed {} cancelled {}",
                count("applied"),
                count("would_apply"),
                count("refused"),
                count("failed"),
                count("cancelled")
            ),
        );
        if !job["finished_at"].is_null() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    progress.end();
    print_items(api, format, id).await?;
    let count = |field: &str| job[field].as_u64().unwrap_or(0);
    let summary = format!(
        "bulk job {id} {}: {} SIMs, applied {}, would apply {}, refused {}, failed {}, cancelled {}",
        job["status"].as_str().unwrap_or("?"),
        count("total"),
        count("applied"),
        count("would_apply"),
        count("refused"),
        count("failed"),
        count("cancelled")
    );
    if count("refused") + count("failed") + count("cancelled") > 0 {
        return Err(CliError::Partial(summary));
    }
    eprintln!("{summary}");
    Ok(())
}

/// Every item's outcome, a page at a time in target order (`after` = the last seq read).
async fn print_items(api: &Api, format: Format, id: &str) -> Result<()> {
    let mut rows = Rows::new(format, ITEM_FIELDS);
    let mut after = 0i64;
    loop {
        let path = format!("{}/items?page_size={ITEMS_PAGE}&after={after}", job_path(id));
        let page = api
            .call(Service::Command, Method::GET, &path, Body::None, &[])
            .await?;
        for item in page.body.as_array().into_iter().flatten() {
            rows.push(item)?;
        }
        rows.flush()?;
        match page.header("x-next-cursor").and_then(|c| c.parse().ok()) {
            Some(next) => after = next,
            None => break,
        }
    }
    rows.finish()
}
