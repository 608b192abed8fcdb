//! `simctl events tail` on the test's own stream (published by the real relay) and
//! `simctl feed` from the query API: the same events in the same order, resumable by position
//! or by a durable consumer without gaps or duplicates.

use serde_json::Value;
use sqlx::PgPool;

use crate::common::{iccid, Platform};

fn positions(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["position"].as_i64().unwrap()).collect()
}

/// `simctl events tail ARGS… -o jsonl`, exit 0: the events printed.
async fn tail(platform: &Platform, args: &[&str]) -> Vec<Value> {
    let args = [&["events", "tail"][..], args, &["-o", "jsonl"]].concat();
    platform.simctl(&args).await.expect(0).jsonl()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn events_tail_and_feed_read_the_log_in_order_and_resume(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    for n in 1..=3 {
        platform.register(n, "tracker").await;
    }
    platform
        .simctl(&["sims", "label", &iccid(2), "tracker two"])
        .await
        .expect(0);

    // The feed: every event, in the global order; paged by --after.
    let feed = platform.simctl(&["feed", "-o", "jsonl"]).await.expect(0).jsonl();
    // The label change and its provider update.
    assert_eq!(feed.len(), 5);
    assert_eq!(feed[3]["event_type"], "SimLabelChanged");
    assert_eq!(feed[4]["event_type"], "ProviderUpdateRequested");
    let all = positions(&feed);
    let after_first = all[0].to_string();
    let rest = platform
        .simctl(&["feed", "--after", &after_first, "-n", "2", "-o", "jsonl"])
        .await
        .expect(0)
        .jsonl();
    assert_eq!(positions(&rest), all[1..3]);
    let table = platform.simctl(&["feed"]).await.expect(0);
    assert!(table.stdout.starts_with("POSITION") && table.stderr.contains("resume with --after"));

    // The stream from its start: what the feed says, as the relay's envelopes.
    let tailed = tail(&platform, &["--from-position", "0", "-n", "5"]).await;
    assert_eq!(positions(&tailed), all);
    assert_eq!(tailed[0]["aggregate_id"], iccid(1).as_str());
    // After a position: the rest, nothing twice.
    let resumed = tail(&platform, &["--from-position", &after_first, "-n", "4"]).await;
    assert_eq!(positions(&resumed), all[1..]);
    // A consumer killed after handling two events resumes after the second: no gap, no
    // duplicate.
    let handled = platform
        .simctl_killed_after(&["events", "tail", "--from-position", "0", "-o", "jsonl"], 2)
        .await;
    let handled: Vec<Value> = handled.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = positions(&handled)[1].to_string();
    let rest = tail(&platform, &["--from-position", &last, "-n", "3"]).await;
    assert_eq!([positions(&handled), positions(&rest)].concat(), all);

    // One SIM's events, one type's events.
    let one = tail(
        &platform,
        &["--from-position", "0", "--iccid", &iccid(2), "-n", "2"],
    )
    .await;
    assert!(one.iter().all(|e| e["aggregate_id"] == iccid(2).as_str()));
    assert_eq!(one[1]["event_type"], "SimLabelChanged");
    let unknown = platform
        .simctl(&["events", "tail", "--from-position", "999999", "-n", "1"])
        .await
        .expect(1);
    assert!(unknown.stderr.contains("feed --after"), "{}", unknown.stderr);

    // A durable consumer resumes where the last run stopped: no gap, no duplicate.
    let first = tail(&platform, &["--durable", "audit", "-n", "2"]).await;
    let second = tail(&platform, &["--durable", "audit", "-n", "3"]).await;
    assert_eq!([positions(&first), positions(&second)].concat(), all);
    platform
        .simctl(&[
            "events",
            "tail",
            "--durable",
            "audit",
            "--from-position",
            "0",
            "-n",
            "1",
        ])
        .await
        .expect(1);

    // Without a position: only what happens from now on.
    let live = {
        let platform = &platform;
        async move {
            platform
                .simctl(&["events", "tail", "-n", "1", "-o", "jsonl"])
                .await
        }
    };
    let register_later = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        platform.register(4, "late").await
    };
    let (live, _) = tokio::join!(live, register_later);
    let live = live.expect(0).jsonl();
    assert_eq!(live[0]["aggregate_id"], iccid(4).as_str());
    assert_eq!(live[0]["event_type"], "SimRegistered");
    platform.cleanup().await;
}
