//! `docs/events.md` is generated from the event types: this test fails when a type changed
//! and the document did not. Regenerate with
//! `UPDATE_DOCS=1 cargo test -p domain --test events_doc`.

use std::fmt::Write;
use std::path::PathBuf;

use domain::limits::AccountLimitsEvent;
use domain::quota::QuotaEvent;
use domain::rule::RuleEvent;
use domain::sim::SimEvent;
use domain::sms::SmsEvent;
use serde_json::Value;

const INTRO: &str = include_str!("events_intro.md");

fn variants(schema: &Value) -> Vec<(String, Value)> {
    let list = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .expect("an adjacently tagged enum has one schema per variant");
    list.iter()
        .map(|variant| {
            let tag = &variant["properties"]["event_type"];
            let name = tag
                .get("const")
                .or_else(|| tag.get("enum").and_then(|e| e.get(0)))
                .and_then(Value::as_str)
                .expect("each variant names its event_type")
                .to_owned();
            (name, variant["properties"]["payload"].clone())
        })
        .collect()
}

fn type_name(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let names: Vec<String> = any.iter().map(type_name).collect();
        return names.join(" or ");
    }
    match &schema["type"] {
        Value::String(t) if t == "array" => format!("array of {}", type_name(&schema["items"])),
        Value::String(t) => match schema.get("format").and_then(Value::as_str) {
            Some(format) => format!("{t} ({format})"),
            None => t.clone(),
        },
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    }
}

fn render_aggregate(out: &mut String, title: &str, aggregate_type: &str, schema: Value) {
    writeln!(
        out,
        "## {title} events (`aggregate_type: \"{aggregate_type}\"`)\n"
    )
    .unwrap();
    for (name, payload) in variants(&schema) {
        writeln!(out, "### {name}\n").unwrap();
        writeln!(out, "Subject: `sim.v1.<iccid>.{name}`\n").unwrap();
        if let Some(description) = payload.get("description").and_then(Value::as_str) {
            writeln!(out, "{description}\n").unwrap();
        }
        let required: Vec<&str> = payload["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(out, "| field | type | required |\n|---|---|---|").unwrap();
        if let Some(properties) = payload["properties"].as_object() {
            for (field, field_schema) in properties {
                let yes = if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                };
                writeln!(out, "| `{field}` | {} | {yes} |", type_name(field_schema)).unwrap();
            }
        }
        writeln!(
            out,
            "\n<details><summary>JSON Schema of the payload</summary>\n\n```json\n{}\n```\n\n</details>\n",
            serde_json::to_string_pretty(&payload).unwrap()
        )
        .unwrap();
    }
    if let Some(definitions) = schema.get("$defs") {
        writeln!(
            out,
            "<details><summary>Shared definitions of the {title} events</summary>\n\n```json\n{}\n```\n\n</details>\n",
            serde_json::to_string_pretty(definitions).unwrap()
        )
        .unwrap();
    }
}

fn render() -> String {
    let mut out = String::from(INTRO);
    out.push('\n');
    render_aggregate(
        &mut out,
        "SIM",
        "sim",
        serde_json::to_value(schemars::schema_for!(SimEvent)).unwrap(),
    );
    render_aggregate(
        &mut out,
        "Quota",
        "quota",
        serde_json::to_value(schemars::schema_for!(QuotaEvent)).unwrap(),
    );
    render_aggregate(
        &mut out,
        "SMS",
        "sms",
        serde_json::to_value(schemars::schema_for!(SmsEvent)).unwrap(),
    );
    render_aggregate(
        &mut out,
        "Rule",
        "rule",
        serde_json::to_value(schemars::schema_for!(RuleEvent)).unwrap(),
    );
    render_aggregate(
        &mut out,
        "Account limits",
        "account_limits",
        serde_json::to_value(schemars::schema_for!(AccountLimitsEvent)).unwrap(),
    );
    out
}

#[test]
fn every_event_type_is_documented_with_its_schema() {
    let rendered = render();
    for name in SimEvent::EVENT_TYPES
        .iter()
        .chain(RuleEvent::EVENT_TYPES)
        .chain(AccountLimitsEvent::EVENT_TYPES)
    {
        assert!(
            rendered.contains(&format!("### {name}\n")),
            "{name} missing from the catalogue"
        );
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == rendered,
        "docs/events.md is out of date with the event types; regenerate it with \
         UPDATE_DOCS=1 cargo test -p domain --test events_doc"
    );
}
