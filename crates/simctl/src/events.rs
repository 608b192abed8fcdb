//! `simctl events tail` (JetStream: a durable consumer that resumes where it stopped, or an
//! ephemeral one; `--from-position` mapped to the stream sequence) and `simctl feed` (the query
//! API's `GET /events?after=`, the backfill that needs no NATS).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream::Stream};
use futures::StreamExt;
use serde_json::Value;

use crate::cli::{FeedArgs, TailArgs};
use crate::client::Api;
use crate::config::{read_secret, Profile};
use crate::error::{CliError, Result};
use crate::history::{event_columns, event_row};
use crate::output::{Format, Rows};

/// The relay's header naming the event's position (`relay::wire::HEADER_POSITION`).
const HEADER_POSITION: &str = "Sim-Position";

fn nats_error(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::unavailable(format!("NATS, {what}: {error}"))
}

/// An ephemeral ordered consumer's messages: no acknowledgements, redelivered in order by the
/// client itself after a lost message or connection.
async fn ordered(
    stream: &Stream,
    filter_subject: String,
    deliver_policy: consumer::DeliverPolicy,
) -> Result<consumer::pull::Ordered> {
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("consumer", e))?;
    consumer.messages().await.map_err(|e| nats_error("consume", e))
}

async fn connect(profile: &Profile) -> Result<jetstream::Context> {
    let mut options = async_nats::ConnectOptions::new()
        .name("simctl")
        .connection_timeout(Duration::from_secs(10));
    if let Some(user) = &profile.nats_user {
        let password = match &profile.nats_password_file {
            Some(path) => read_secret(path, "NATS password")?,
            None => {
                return Err(CliError::usage(
                    "a NATS user needs a password file (nats_password_file / SIMCTL_NATS_PASSWORD_FILE)",
                ))
            }
        };
        options = options.user_and_password(user.clone(), password);
    }
    let client = options
        .connect(profile.nats_url.as_str())
        .await
        .map_err(|e| nats_error("connect", format!("{} ({e})", profile.nats_url)))?;
    Ok(jetstream::new(client))
}

/// The subject filter: `<prefix>.v1.<iccid|*>.<type|*>`, or `<prefix>.v1.>` for everything.
fn filter_subject(profile: &Profile, args: &TailArgs) -> String {
    let prefix = &profile.subject_prefix;
    match (&args.iccid, &args.event_type) {
        (None, None) => format!("{prefix}.v1.>"),
        (iccid, event_type) => format!(
            "{prefix}.v1.{}.{}",
            iccid.as_deref().unwrap_or("*"),
            event_type.as_deref().unwrap_or("*")
        ),
    }
}

/// The position a message names: the relay's header, else the envelope's `position`.
fn position_of(message: &jetstream::Message) -> Option<i64> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_POSITION))
        .and_then(|v| v.as_str().parse().ok())
        .or_else(|| {
            serde_json::from_slice::<Value>(&message.payload)
                .ok()
                .and_then(|body| body["position"].as_i64())
        })
}

/// The stream sequence of the event at `position`. The stream is in the global log's order,
/// in which positions do not always increase, so this reads the stream from its start (one
/// pass, no acknowledgements) rather than searching by position.
async fn sequence_of(stream: &mut Stream, profile: &Profile, position: i64) -> Result<u64> {
    let info = stream.info().await.map_err(|e| nats_error("stream info", e))?;
    let last = info.state.last_sequence;
    let first = info.state.first_sequence;
    if last == 0 || last < first {
        return Err(CliError::usage(format!(
            "stream {} is empty; no event at position {position}",
            profile.stream
        )));
    }
    let everything = format!("{}.v1.>", profile.subject_prefix);
    let mut messages = ordered(stream, everything, consumer::DeliverPolicy::All).await?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| nats_error("scan", e))?;
        let sequence = message.info().map_err(|e| nats_error("scan", e))?.stream_sequence;
        if position_of(&message) == Some(position) {
            return Ok(sequence);
        }
        if sequence >= last {
            break;
        }
    }
    Err(CliError::usage(format!(
        "no event at position {position} in stream {} (it may have aged out): read it with `simctl feed --after {position}`",
        profile.stream
    )))
}

pub async fn tail(api: &Api, format: Format, args: TailArgs) -> Result<()> {
    let profile = &api.profile;
    let js = connect(profile).await?;
    let mut stream = js
        .get_stream(&profile.stream)
        .await
        .map_err(|e| nats_error("stream", format!("{} ({e})", profile.stream)))?;
    let filter = filter_subject(profile, &args);
    let deliver_policy = match args.from_position {
        None if args.durable.is_some() => consumer::DeliverPolicy::All,
        None => consumer::DeliverPolicy::New,
        Some(position) if position <= 0 => consumer::DeliverPolicy::All,
        Some(position) => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: sequence_of(&mut stream, profile, position).await? + 1,
        },
    };
    let mut rows = Rows::streaming(format, event_columns(format));
    let limit = args.count.unwrap_or(u64::MAX);
    if limit == 0 {
        return rows.finish();
    }
    match &args.durable {
        None => {
            let mut messages = ordered(&stream, filter, deliver_policy).await?;
            let mut seen = 0;
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| nats_error("consume", e))?;
                print(&mut rows, format, &message.payload)?;
                seen += 1;
                if seen >= limit {
                    break;
                }
            }
        }
        Some(name) => {
            let consumer = durable(
                &mut stream,
                name,
                filter,
                deliver_policy,
                args.from_position.is_some(),
            )
            .await?;
            // Pulled in batches of at most what is still wanted: a message handed to this
            // process and never acknowledged would reach the next run only after the ack wait.
            let mut seen = 0;
            while seen < limit {
                let want = (limit - seen).min(256) as usize;
                let mut batch = consumer
                    .batch()
                    .max_messages(want)
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|e| nats_error("consume", e))?;
                while let Some(message) = batch.next().await {
                    let message = message.map_err(|e| nats_error("consume", e))?;
                    print(&mut rows, format, &message.payload)?;
                    // Acknowledged once printed, and the acknowledgement confirmed by the
                    // server: the next run starts after this event.
                    message.double_ack().await.map_err(|e| nats_error("ack", e))?;
                    seen += 1;
                }
            }
        }
    }
    rows.finish()
}

/// The durable consumer `name`: created with the filter and start, or the existing one (which
/// resumes where it stopped; it must have the same filter, and cannot be moved).
async fn durable(
    stream: &mut Stream,
    name: &str,
    filter: String,
    deliver_policy: consumer::DeliverPolicy,
    positioned: bool,
) -> Result<consumer::Consumer<consumer::pull::Config>> {
    if let Ok(existing) = stream.consumer_info(name).await {
        if existing.config.filter_subject != filter {
            return Err(CliError::usage(format!(
                "durable consumer {name} exists with filter {}, not {filter}",
                existing.config.filter_subject
            )));
        }
        if positioned {
            return Err(CliError::usage(format!(
                "durable consumer {name} exists and resumes where it stopped; --from-position only places a new one"
            )));
        }
        return stream
            .get_consumer(name)
            .await
            .map_err(|e| nats_error("consumer", e));
    }
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: filter,
            deliver_policy,
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("consumer", e))
}

fn print(rows: &mut Rows, format: Format, payload: &[u8]) -> Result<()> {
    let envelope: Value = serde_json::from_slice(payload)
        .map_err(|e| CliError::unavailable(format!("a message that is not an event envelope: {e}")))?;
    let row = if format == Format::Jsonl || format == Format::Json {
        envelope
    } else {
        event_row(&envelope)
    };
    rows.push(&row)?;
    rows.flush()
}

pub async fn feed(api: &Api, format: Format, args: FeedArgs) -> Result<()> {
    let mut rows = Rows::streaming(format, event_columns(format));
    let mut after = args.after;
    let mut left = args.count.unwrap_or(u64::MAX);
    while left > 0 {
        let limit = left.min(1000);
        let page = api.query(&format!("/events?after={after}&limit={limit}")).await?;
        let events = page.body["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            let row = if matches!(format, Format::Json | Format::Jsonl) {
                event.clone()
            } else {
                event_row(event)
            };
            rows.push(&row)?;
        }
        rows.flush()?;
        left -= events.len() as u64;
        after = page.body["next_after"].as_i64().unwrap_or(after);
        if events.is_empty() {
            if !args.follow {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(args.interval.max(0.05))).await;
        }
    }
    rows.finish()?;
    if format == Format::Table {
        eprintln!("resume with --after {after}");
    }
    Ok(())
}
