//! `simctl history`, `state --as-of` and `diff` from the query API's event-store routes.

use sqlx::PgPool;

use crate::common::{iccid, Platform};

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn history_state_as_of_and_diff_field_by_field(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    let sim = iccid(8);
    platform.register(8, "pump").await;
    platform
        .simctl(&["sims", "label", &sim, "north pump"])
        .await
        .expect(0);
    platform.simctl(&["sims", "activate", &sim]).await.expect(0);

    let events = platform
        .simctl(&["history", &sim, "-o", "json"])
        .await
        .expect(0)
        .json();
    let events = events.as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "SimRegistered",
            "SimLabelChanged",
            // The label also goes to 1NCE.
            "ProviderUpdateRequested",
            "ActivationRequested"
        ],
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["metadata"]["actor"] == "user:admin"));
    let registered_at = events[0]["recorded_at"].as_str().unwrap().to_owned();
    let requested_at = events[3]["recorded_at"].as_str().unwrap().to_owned();

    let table = platform.simctl(&["history", &sim]).await.expect(0);
    assert!(table.stdout.lines().next().unwrap().starts_with("POSITION"));
    assert!(table.stdout.contains("SimLabelChanged") && table.stdout.contains("user:admin"));
    let csv = platform
        .simctl(&["history", &sim, "-o", "csv"])
        .await
        .expect(0)
        .csv();
    assert_eq!(csv.len(), 5);
    let after_first = events[0]["position"].as_i64().unwrap().to_string();
    let rest = platform
        .simctl(&["history", &sim, "--after", &after_first, "-o", "jsonl"])
        .await
        .expect(0)
        .jsonl();
    assert_eq!(rest.len(), 3);

    let then = platform
        .simctl(&["state", &sim, "--as-of", &registered_at, "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(then["label"], "pump");
    assert_eq!(then["pending_change"], serde_json::Value::Null);
    let now = platform
        .simctl(&["state", &sim, "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(now["label"], "north pump");
    assert_eq!(now["pending_change"], "activation");

    let diff = platform
        .simctl(&["diff", &sim, &registered_at, &requested_at, "-o", "json"])
        .await
        .expect(0)
        .json();
    let change = |field: &str| {
        diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field"] == field)
            .cloned()
    };
    assert_eq!(change("label").unwrap()["from"], "pump");
    assert_eq!(change("label").unwrap()["to"], "north pump");
    assert_eq!(change("pending_change").unwrap()["to"], "activation");
    assert!(change("imsi").is_none(), "unchanged fields are left out");
    let table = platform
        .simctl(&["diff", &sim, &registered_at, &requested_at])
        .await
        .expect(0);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("label") && l.contains("pump") && l.ends_with("north pump")),
        "{}",
        table.stdout
    );

    // Before its registration the SIM had no fields: everything is a change.
    let from_nothing = platform
        .simctl(&[
            "diff",
            &sim,
            "2020-01-01T00:00:00Z",
            &registered_at,
            "-o",
            "jsonl",
        ])
        .await
        .expect(0)
        .jsonl();
    assert!(from_nothing
        .iter()
        .any(|c| c["field"] == "iccid" && c["from"].is_null() && c["to"] == sim.as_str()));
    let never = platform
        .simctl(&["state", &sim, "--as-of", "2020-01-01T00:00:00Z"])
        .await
        .expect(2);
    assert!(never.stderr.contains("SIM_NOT_FOUND"));
    platform.cleanup().await;
}
