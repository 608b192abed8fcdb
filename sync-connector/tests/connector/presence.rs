//! `jetstream_stream_present` / `jetstream_consumer_present`: what the NATS server says of the
//! stream and of each request consumer, as the connector exports it (the alerts
//! JetStreamStreamMissing and JetStreamConsumerMissing read these).

use std::time::Duration;

use async_nats::jetstream;
use once_client::CallObserver;
use sqlx::PgPool;
use sync_connector::{consumers, RequestKind};

use crate::common::Harness;

fn gauge(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(series).map(|v| v.trim().to_owned()))
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_stream_and_request_consumers_are_reported_present_or_missing(pool: PgPool) {
    let harness = Harness::new(pool, 1, 0, &[]).await;
    let connector = harness.connector().await;
    let js = jetstream::new(harness.nats.clone());
    let settings = connector.consumer_settings();
    let stream = harness.stream.clone();
    let top_up = settings.name(RequestKind::TopUp);
    let sms = settings.name(RequestKind::Sms);
    let stream_series = format!(r#"jetstream_stream_present{{stream="{stream}"}}"#);
    let consumer_series =
        |name: &str| format!(r#"jetstream_consumer_present{{consumer="{name}",stream="{stream}"}}"#);

    // No stream yet: the stream and every consumer are missing.
    connector.jetstream_presence.check(&js).await;
    let text = connector.metrics.render();
    assert_eq!(gauge(&text, &stream_series).as_deref(), Some("0"), "{text}");
    assert_eq!(
        gauge(&text, &consumer_series(&top_up)).as_deref(),
        Some("0"),
        "{text}"
    );

    // The stream and the consumers as the connector creates them: present.
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{}.v1.>", harness.prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    let handle = js.get_stream(&stream).await.unwrap();
    for kind in RequestKind::ALL {
        handle
            .create_consumer(consumers::consumer_config(&settings, kind))
            .await
            .unwrap();
    }
    connector.jetstream_presence.check(&js).await;
    let text = connector.metrics.render();
    assert_eq!(gauge(&text, &stream_series).as_deref(), Some("1"), "{text}");
    for kind in RequestKind::ALL {
        let series = consumer_series(&settings.name(kind));
        assert_eq!(gauge(&text, &series).as_deref(), Some("1"), "{series} in {text}");
    }

    // One consumer deleted: that one is missing, the others stay present.
    handle.delete_consumer(&sms).await.unwrap();
    connector.jetstream_presence.check(&js).await;
    let text = connector.metrics.render();
    assert_eq!(
        gauge(&text, &consumer_series(&sms)).as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(
        gauge(&text, &consumer_series(&top_up)).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(gauge(&text, &stream_series).as_deref(), Some("1"), "{text}");

    // The connector's other start-up series: the sweep period and, before any sweep, an age
    // counted from the start.
    assert_eq!(
        gauge(&text, "sync_poll_interval_seconds").as_deref(),
        Some("300"),
        "{text}"
    );
    connector.sync_metrics.refresh_poll_age();
    assert!(connector.sync_metrics.seconds_since_successful_poll.get() > 0.0);
    // `/ready`'s optional "provider": unavailable while its last call got no answer or a 5xx.
    let metrics = &connector.sync_metrics;
    assert!(metrics.provider_available(), "before any call");
    metrics.call_finished("sims", None, Duration::ZERO);
    assert!(!metrics.provider_available());
    metrics.call_finished("sims", Some(503), Duration::ZERO);
    assert!(!metrics.provider_available());
    metrics.call_finished("sims", Some(429), Duration::ZERO);
    assert!(metrics.provider_available(), "a 429 is an answer");
    harness.cleanup().await;
}
