//! `simctl audit export` and `simctl audit verify`: the log (one SIM's events or the fleet's)
//! in the global order as a hash chain, each record carrying the hash of the one before; a
//! check of a chain offline (removed, altered, reordered or truncated records), and against a
//! running platform (the live log compared record by record, and every read-model row compared
//! with the replay of its SIM's events).
//!
//! The chain is JSON lines: a header `{chain, scope, iccid, after, source, exported_at, hash}`,
//! one `{n, prev, hash, event}` per event, and `{end, count, prev, hash}`. A hash is the
//! SHA-256 (hex) of the previous hash, `\n`, and the canonical JSON of the record's content
//! (object keys sorted, no spaces), so the chain does not depend on how a JSON library orders
//! keys. Anyone can recompute a whole chain: the final hash, printed at export, is the anchor
//! to keep apart (`--expect-hash`).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Write};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cli::{AuditCommand, ExportArgs, VerifyArgs};
use crate::client::Api;
use crate::error::{CliError, Result};
use crate::history::{read_log, read_log_until};
use crate::output::{Format, Rows};
use crate::session::now;

const CHAIN: &str = "simctl-audit/1";

pub async fn run(api: &Api, format: Format, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Export(args) => export(api, args).await,
        AuditCommand::Verify(args) => verify(Some(api), format, args).await,
    }
}

/// Object keys sorted at every level, no whitespace.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        scalar => scalar.to_string(),
    }
}

fn link(prev: &str, content: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(content).as_bytes());
    hex::encode(hasher.finalize())
}

fn header_content(header: &Value) -> Value {
    let mut content = header.clone();
    if let Some(map) = content.as_object_mut() {
        map.remove("hash");
    }
    content
}

async fn export(api: &Api, args: ExportArgs) -> Result<()> {
    let mut out: Box<dyn Write> = match &args.file {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut header = json!({
        "chain": CHAIN,
        "scope": if args.iccid.is_some() { "sim" } else { "fleet" },
        "iccid": args.iccid,
        "after": args.after,
        "source": api.profile.query_url,
        "exported_at": now(),
    });
    let mut prev = link("", &header);
    header["hash"] = json!(prev);
    writeln!(out, "{header}")?;
    let mut count = 0u64;
    read_log(api, args.iccid.as_deref(), args.after, |event| {
        count += 1;
        let hash = link(&prev, event);
        writeln!(
            out,
            "{}",
            json!({"n": count, "prev": prev, "hash": hash, "event": event})
        )?;
        prev = hash;
        Ok(())
    })
    .await?;
    let end = json!({"end": true, "count": count});
    let hash = link(&prev, &end);
    writeln!(
        out,
        "{}",
        json!({"end": true, "count": count, "prev": prev, "hash": hash})
    )?;
    out.flush()?;
    eprintln!("exported {count} events; final hash {hash}");
    Ok(())
}

/// What the chain says, once checked: its header, the events in order, the problems found.
struct Checked {
    header: Value,
    events: Vec<Value>,
    end_hash: Option<String>,
    problems: Vec<Value>,
}

fn problem(kind: &str, at: Value, detail: String) -> Value {
    json!({"kind": kind, "at": at, "detail": detail})
}

/// Checks the chain's links offline.
fn check(reader: impl BufRead) -> Result<Checked> {
    let mut lines = reader.lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let header: Value = serde_json::from_str(&first)
        .map_err(|e| CliError::usage(format!("not an audit chain (line 1): {e}")))?;
    if header["chain"] != CHAIN {
        return Err(CliError::usage(format!(
            "not an audit chain: line 1 names no {CHAIN:?}"
        )));
    }
    let mut problems = Vec::new();
    let mut prev = link("", &header_content(&header));
    if header["hash"] != prev.as_str() {
        problems.push(problem(
            "altered",
            json!("header"),
            "the header's hash does not match its content".into(),
        ));
    }
    let mut events = Vec::new();
    let mut end_hash = None;
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let record: Value = serde_json::from_str(&line?)
            .map_err(|e| CliError::usage(format!("line {line_no} is not JSON: {e}")))?;
        let expected_n = events.len() as u64 + 1;
        if record["end"] == true {
            let content = json!({"end": true, "count": record["count"]});
            if record["count"] != events.len() as u64 {
                problems.push(problem(
                    "removed",
                    json!("end"),
                    format!(
                        "the end record counts {} events, the chain holds {}",
                        record["count"],
                        events.len()
                    ),
                ));
            }
            if record["prev"] != prev.as_str() {
                problems.push(problem(
                    "removed",
                    json!("end"),
                    "the end record does not follow the last record: records were removed or reordered"
                        .into(),
                ));
            }
            let hash = link(record["prev"].as_str().unwrap_or_default(), &content);
            if record["hash"] != hash.as_str() {
                problems.push(problem(
                    "altered",
                    json!("end"),
                    "the end record's hash does not match".into(),
                ));
            }
            end_hash = Some(hash);
            break;
        }
        let n = record["n"].as_u64().unwrap_or(0);
        let event = record["event"].clone();
        let own = link(record["prev"].as_str().unwrap_or_default(), &event);
        if record["hash"] != own.as_str() {
            problems.push(problem(
                "altered",
                json!(n),
                format!(
                    "record {n} (line {line_no}, position {}): its content does not match its hash",
                    event["position"]
                ),
            ));
        }
        if record["prev"] != prev.as_str() {
            let kind = if n < expected_n { "reordered" } else { "removed" };
            let detail = if n > expected_n {
                format!(
                    "record {n} (line {line_no}) follows record {}: records {expected_n}..{} are missing",
                    expected_n - 1,
                    n - 1
                )
            } else {
                format!("record {n} (line {line_no}) does not follow the record before it")
            };
            problems.push(problem(kind, json!(n), detail));
        }
        prev = record["hash"].as_str().unwrap_or_default().to_owned();
        events.push(event);
    }
    if end_hash.is_none() {
        problems.push(problem(
            "truncated",
            json!("end"),
            "no end record: the chain was cut short".into(),
        ));
    }
    Ok(Checked {
        header,
        events,
        end_hash,
        problems,
    })
}

/// Checks a chain; against the platform too when asked (then `api` is needed).
pub async fn verify(api: Option<&Api>, format: Format, args: VerifyArgs) -> Result<()> {
    let reader: Box<dyn BufRead> = match args.file.as_os_str().to_str() {
        Some("-") => Box::new(std::io::BufReader::new(std::io::stdin())),
        _ => Box::new(std::io::BufReader::new(
            std::fs::File::open(&args.file)
                .map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?,
        )),
    };
    let mut checked = check(reader)?;
    if let (Some(expected), Some(found)) = (&args.expect_hash, &checked.end_hash) {
        if expected != found {
            checked.problems.push(problem(
                "anchor",
                json!("end"),
                format!("the final hash is {found}, not {expected}"),
            ));
        }
    }
    if let (true, Some(api)) = (args.against_platform, api) {
        compare_log(api, &mut checked).await?;
        compare_read_models(api, &mut checked).await?;
    }
    let mut rows = Rows::new(format, &["kind", "at", "detail"]);
    for problem in &checked.problems {
        rows.push(problem)?;
    }
    rows.finish()?;
    if checked.problems.is_empty() {
        eprintln!(
            "chain of {} events verified{}",
            checked.events.len(),
            if args.against_platform {
                " against the platform"
            } else {
                ""
            }
        );
        Ok(())
    } else {
        Err(CliError::Verification(format!(
            "{} problem(s) found",
            checked.problems.len()
        )))
    }
}

/// The live log over the chain's range, record by record: what the chain lacks, holds in
/// another order, holds altered, or holds that the log does not. The log is read until every
/// position of the chain has been seen (what follows was written after the export).
async fn compare_log(api: &Api, checked: &mut Checked) -> Result<()> {
    let iccid = checked.header["iccid"].as_str().map(str::to_owned);
    let after = checked.header["after"].as_i64().unwrap_or(0);
    let exported: HashMap<i64, String> = checked
        .events
        .iter()
        .map(|e| (e["position"].as_i64().unwrap_or(-1), canonical(e)))
        .collect();
    let mut live: Vec<(i64, String)> = Vec::new();
    let mut seen = 0;
    read_log_until(api, iccid.as_deref(), after, |event| {
        let position = event["position"].as_i64().unwrap_or(-1);
        if exported.contains_key(&position) {
            seen += 1;
        }
        live.push((position, canonical(event)));
        Ok(seen < exported.len())
    })
    .await?;
    let problems = &mut checked.problems;
    let in_log: BTreeSet<i64> = live.iter().map(|(p, _)| *p).collect();
    for (position, text) in &live {
        match exported.get(position) {
            None => problems.push(problem(
                "removed",
                json!(position),
                format!("the log holds position {position}, the chain does not"),
            )),
            Some(exported) if exported != text => problems.push(problem(
                "altered",
                json!(position),
                format!("position {position} differs from the log"),
            )),
            Some(_) => {}
        }
    }
    let chain_order: Vec<i64> = checked
        .events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .filter(|p| in_log.contains(p))
        .collect();
    let log_order: Vec<i64> = live
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| exported.contains_key(p))
        .collect();
    let first_out_of_order = chain_order.iter().zip(&log_order).position(|(c, l)| c != l);
    if let Some(i) = first_out_of_order {
        problems.push(problem(
            "reordered",
            json!(chain_order[i]),
            format!(
                "record {} of the chain is position {}, the log has position {} there",
                i + 1,
                chain_order[i],
                log_order[i]
            ),
        ));
    }
    for position in exported.keys().filter(|p| !in_log.contains(p)) {
        problems.push(problem(
            "not_in_log",
            json!(position),
            format!("the chain holds position {position}, the log does not"),
        ));
    }
    Ok(())
}

/// Every SIM of the chain: every read-model row the query API serves for it against the
/// replay of its events (see [`crate::drift`]), once the projectors have applied the chain's
/// last event.
async fn compare_read_models(api: &Api, checked: &mut Checked) -> Result<()> {
    let token = checked
        .events
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .max()
        .unwrap_or(0);
    let sims: BTreeSet<String> = checked
        .events
        .iter()
        .filter_map(|e| e["iccid"].as_str().map(str::to_owned))
        .collect();
    for iccid in sims {
        crate::drift::compare_sim(api, &iccid, token, &mut checked.problems).await?;
    }
    Ok(())
}
