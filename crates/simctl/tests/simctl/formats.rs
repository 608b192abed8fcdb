//! Every command that prints, in every output format: JSON, JSON lines, CSV and the table say
//! the same thing (the same rows, the same values in the columns CSV and the table show).

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{iccid, Platform, Run};

const FORMATS: [&str; 4] = ["json", "jsonl", "csv", "table"];

/// A cell as CSV and the table print it (as `simctl`'s `output::cell`).
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// The rows of a JSON answer: an array's items, the `changes` of a `diff` document, or the
/// one object.
fn rows_of(json: Value, one: bool) -> Vec<Value> {
    match json {
        Value::Array(items) => items,
        Value::Object(mut document) if !one && document.contains_key("changes") => {
            rows_of(document.remove("changes").unwrap(), one)
        }
        one => vec![one],
    }
}

/// Runs `args` in the four formats (expecting `code`) and checks they agree; returns the rows.
async fn in_every_format(platform: &Platform, args: &[&str], code: i32, one: bool) -> Vec<Value> {
    let run = |format: &'static str| {
        let args = [args, &["-o", format]].concat();
        async move { platform.simctl(&args).await.expect(code) }
    };
    let what = args.join(" ");
    let json: Run = run("json").await;
    let rows = rows_of(json.json(), one);
    if one {
        assert_eq!(rows.len(), 1, "{what}: one object");
        assert!(rows[0].is_object(), "{what}: {}", json.stdout);
    }

    let jsonl = run("jsonl").await.jsonl();
    assert_eq!(jsonl.len(), rows.len(), "{what}: JSON lines, a row each");
    for (line, row) in jsonl.iter().zip(&rows) {
        // Commands that act (a label, a tag) answer their own new values each run: compare
        // the fields that do not move.
        for field in ["iccid", "position", "kind", "event_type", "id", "seq", "role"] {
            assert_eq!(line[field], row[field], "{what}: {field} in JSON lines and JSON");
        }
    }

    let csv = run("csv").await.csv();
    assert_eq!(csv.len(), rows.len() + 1, "{what}: a header and a record per row");
    let header = &csv[0];
    for (record, row) in csv[1..].iter().zip(&rows) {
        assert_eq!(record.len(), header.len(), "{what}: a cell per column");
        for (column, text) in header.iter().zip(record) {
            let value = &row[column.as_str()];
            if value.is_object() || !row.as_object().unwrap().contains_key(column.as_str()) {
                continue; // nested objects as JSON text; lifted columns (an event's actor)
            }
            if args[0] == "sims"
                && ["label", "tags", "version", "updated_at", "last_position"].contains(&column.as_str())
                && !["list", "show"].contains(&args[1])
            {
                continue; // moved by this very run
            }
            assert_eq!(text, &cell(value), "{what}: CSV column {column}");
        }
    }

    let table = run("table").await.stdout;
    let lines: Vec<&str> = table.lines().collect();
    if one {
        // `field  value` lines: the CSV's columns, in its order.
        let fields: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            header.iter().map(String::as_str).collect::<Vec<_>>(),
            "{what}: table fields"
        );
    } else {
        assert_eq!(
            lines.len(),
            rows.len() + 1,
            "{what}: a header and a line per row\n{table}"
        );
        let headings: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(headings[0], header[0].to_uppercase(), "{what}: table header");
        for (line, record) in lines[1..].iter().zip(&csv[1..]) {
            assert!(
                line.starts_with(record[0].as_str()),
                "{what}: {line} starts with {}",
                record[0]
            );
        }
    }
    rows
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn every_printing_command_agrees_in_every_output_format(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    for n in 1..=3 {
        platform.register(n, "meter").await;
    }
    let sim = iccid(2);
    platform
        .simctl(&["sims", "label", &sim, "north pump", "--wait"])
        .await
        .expect(0);

    in_every_format(&platform, &["whoami"], 0, true).await;
    let listed = in_every_format(&platform, &["sims", "list"], 0, false).await;
    assert_eq!(listed.len(), 3);
    in_every_format(&platform, &["sims", "show", &sim], 0, true).await;
    let history = in_every_format(&platform, &["history", &sim], 0, false).await;
    let registered_at = history[0]["recorded_at"].as_str().unwrap().to_owned();
    let labelled_at = history[1]["recorded_at"].as_str().unwrap().to_owned();
    in_every_format(&platform, &["state", &sim, "--as-of", &registered_at], 0, true).await;
    let changes = in_every_format(&platform, &["diff", &sim, &registered_at, &labelled_at], 0, false).await;
    assert!(changes.iter().any(|c| c["field"] == "label"), "{changes:?}");
    let feed = in_every_format(&platform, &["feed"], 0, false).await;
    let tailed = in_every_format(
        &platform,
        &[
            "events",
            "tail",
            "--from-position",
            "0",
            "-n",
            &feed.len().to_string(),
        ],
        0,
        false,
    )
    .await;
    assert_eq!(tailed.len(), feed.len());

    // Commands that act: each run is a new command with its answer.
    for (n, format) in FORMATS.iter().enumerate() {
        let label = format!("pump {format}");
        let answer = platform
            .simctl(&["sims", "label", &iccid(1), &label, "--wait", "-o", format])
            .await
            .expect(0);
        assert!(answer.stdout.contains(&label), "{format}: {}", answer.stdout);
        let tag = format!("t{n}");
        let answer = platform
            .simctl(&["sims", "tag", &iccid(3), "--add", &tag, "--wait", "-o", format])
            .await
            .expect(0);
        assert!(answer.stdout.contains(&tag), "{format}: {}", answer.stdout);
    }

    // A bulk job's progress and its items.
    let job = platform
        .simctl(&[
            "bulk",
            "run",
            "add-tags",
            "--tag",
            "bulk",
            "--iccid",
            &format!("{},{}", iccid(1), iccid(2)),
            "-o",
            "json",
        ])
        .await
        .expect(0)
        .json();
    assert_eq!(job.as_array().map(Vec::len), Some(2), "{job}");
    let id: String = sqlx::query_scalar("SELECT id::text FROM bulk_jobs")
        .fetch_one(&platform.commands.pool)
        .await
        .unwrap();
    in_every_format(&platform, &["bulk", "show", &id], 0, true).await;
    let items = in_every_format(&platform, &["bulk", "wait", &id], 0, false).await;
    assert_eq!(items.len(), 2);

    // An audit chain's problems (exit 5): a record removed.
    let chain = platform.home.join("chain.jsonl");
    platform
        .simctl(&["audit", "export", "--file", chain.to_str().unwrap()])
        .await
        .expect(0);
    let text = std::fs::read_to_string(&chain).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    std::fs::write(&chain, lines.join("\n") + "\n").unwrap();
    let problems = in_every_format(&platform, &["audit", "verify", chain.to_str().unwrap()], 5, false).await;
    assert!(problems.iter().any(|p| p["kind"] == "removed"), "{problems:?}");
    platform.cleanup().await;
}
