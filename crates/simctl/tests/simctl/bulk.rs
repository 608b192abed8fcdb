//! `simctl bulk run` from a CSV file and from stdin: the job is followed to its end, every
//! item's outcome printed, and the exit code says whether every item applied.

use sqlx::PgPool;

use crate::common::{iccid, Platform};

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn bulk_from_a_csv_prints_every_outcome_and_exits_4_on_refusals(pool: PgPool) {
    let platform = Platform::start(pool).await;
    platform.login().await;
    for n in 1..=3 {
        platform.commands.register_sim(&platform.admin, &iccid(n)).await;
    }
    let csv = platform.home.join("sims.csv");
    let unknown = iccid(99);
    std::fs::write(
        &csv,
        format!(
            "iccid,note\n{},a\n{},b\n{unknown},c\n{},d\n",
            iccid(1),
            iccid(2),
            iccid(3)
        ),
    )
    .unwrap();

    let run = platform
        .simctl(&[
            "bulk",
            "run",
            "set-label",
            "--label",
            "batch 7",
            "--file",
            csv.to_str().unwrap(),
            "-o",
            "jsonl",
        ])
        .await
        .expect(4);
    let items = run.jsonl();
    let outcomes: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| {
            (
                i["iccid"].as_str().unwrap(),
                i["outcome"].as_str().unwrap(),
                i["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (iccid(1).as_str(), "applied", ""),
            (iccid(2).as_str(), "applied", ""),
            (unknown.as_str(), "refused", "SIM_NOT_FOUND"),
            (iccid(3).as_str(), "applied", ""),
        ]
    );
    assert!(
        run.stderr.contains("applied 3") && run.stderr.contains("refused 1"),
        "{}",
        run.stderr
    );
    let queries = &platform.queries;
    let label =
        |n: u32| async move { queries.get_json(&format!("/sims/{}", iccid(n))).await["label"].clone() };
    crate::common::eventually("the labels in the read model", || async {
        label(1).await == "batch 7" && label(3).await == "batch 7"
    })
    .await;

    // A dry run from stdin (one ICCID per line): would apply, nothing written, exit 0.
    let before = platform.commands.count_events("ActivationRequested").await;
    let stdin = format!("{}\n{}\n", iccid(1), iccid(2));
    let dry = platform
        .simctl_with(
            &["bulk", "run", "activate", "--dry-run", "-o", "csv"],
            Some(&stdin),
            &[],
        )
        .await
        .expect(0)
        .csv();
    assert_eq!(dry[0][..3], ["seq", "iccid", "outcome"]);
    assert_eq!(dry.len(), 3);
    assert!(dry[1..].iter().all(|row| row[2] == "would_apply"), "{dry:?}");
    assert_eq!(
        platform.commands.count_events("ActivationRequested").await,
        before
    );

    // Submitted detached, then followed and shown by id; the key makes a resubmission the same job.
    let submit = [
        "bulk",
        "run",
        "add-tags",
        "--tag",
        "north",
        "--iccid",
        &iccid(1),
        "--detach",
        "--idempotency-key",
        "tags-once",
        "-o",
        "json",
    ];
    let detached = platform.simctl(&submit).await.expect(0).json();
    let id = detached["id"].as_str().unwrap().to_owned();
    let again = platform.simctl(&submit).await.expect(0).json();
    assert_eq!(again["id"], id.as_str());
    let waited = platform
        .simctl(&["bulk", "wait", &id, "-o", "jsonl"])
        .await
        .expect(0)
        .jsonl();
    assert_eq!(waited.len(), 1);
    assert_eq!(waited[0]["outcome"], "applied");
    let shown = platform
        .simctl(&["bulk", "show", &id, "-o", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(shown["status"], "done");
    assert_eq!(shown["applied"], 1);
    let finished = platform.simctl(&["bulk", "cancel", &id]).await.expect(2);
    assert!(
        finished.stderr.contains("BULK_JOB_FINISHED"),
        "{}",
        finished.stderr
    );
    assert!(
        !run.stderr.contains('\r'),
        "no progress line when stderr is not a terminal"
    );

    // A bad ICCID refuses the whole job: the API's report, exit 2.
    let bad = platform
        .simctl_with(
            &["bulk", "run", "suspend", "--file", "-"],
            Some("iccid\n123\n"),
            &[],
        )
        .await
        .expect(2);
    assert!(bad.stderr.contains("INVALID_TARGET"), "{}", bad.stderr);
    platform.cleanup().await;
}
