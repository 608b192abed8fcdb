//! The bench's table: one column per fleet size, the measured and extrapolated figures.

use std::time::Duration;

use super::{Outcome, Settings, POLL_INTERVAL_SECS};

fn hours(secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.0} min", secs / 60.0)
    }
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

pub fn print(settings: &Settings, outcomes: &[Outcome]) {
    let header: Vec<String> = outcomes.iter().map(|o| format!("{} SIMs", o.sims)).collect();
    println!("\n| | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(outcomes.len()));
    let row = |name: &str, cell: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = outcomes.iter().map(cell).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("**first list sweep** (registers every SIM): time", &|o| {
        format!("{:.1} s", o.first.elapsed.as_secs_f64())
    });
    row("— provider calls (list pages + token)", &|o| {
        format!("{} + {}", o.first.calls.list, o.first.calls.token)
    });
    row("— SIMs registered / events stored", &|o| {
        format!("{} / {}", o.first.sims_new, o.first.events)
    });
    row("— list calls/s", &|o| {
        format!("{:.2}", rate(o.first.calls.list, o.first.elapsed))
    });
    let detail_label = match settings.detail_window {
        Some(w) => format!(
            "**first per-SIM refresh**, measured over {} s: SIMs refreshed",
            w.as_secs()
        ),
        None => "**first per-SIM refresh**, to the end: SIMs refreshed".into(),
    };
    row(&detail_label, &|o| {
        format!(
            "{} in {:.0} s{}",
            o.detail.sims,
            o.detail.elapsed.as_secs_f64(),
            if o.detail.finished { " (all)" } else { "" }
        )
    });
    row("— provider calls / calls per SIM", &|o| {
        format!(
            "{} / {:.2}",
            o.detail.calls.sims,
            o.detail.calls.sims as f64 / o.detail.sims.max(1) as f64
        )
    });
    row("— rate: calls/s, SIMs/s", &|o| {
        format!(
            "{:.2}, {:.2}",
            rate(o.detail.calls.sims, o.detail.elapsed),
            rate(o.detail.sims, o.detail.elapsed)
        )
    });
    row("— events stored", &|o| o.detail.events.to_string());
    row("— whole per-SIM phase (**extrapolated** from the rate)", &|o| {
        if o.detail.finished {
            format!("{} (measured)", hours(o.detail.elapsed.as_secs_f64()))
        } else {
            hours(o.sims as f64 / rate(o.detail.sims, o.detail.elapsed))
        }
    });
    row(
        "**first full sync** = list sweep + per-SIM phase (extrapolated)",
        &|o| {
            let detail = if o.detail.finished {
                o.detail.elapsed.as_secs_f64()
            } else {
                o.sims as f64 / rate(o.detail.sims, o.detail.elapsed)
            };
            let calls = o.first.calls.list as f64
                + o.sims as f64 * o.detail.calls.sims as f64 / o.detail.sims.max(1) as f64;
            format!(
                "{}, {:.0} calls",
                hours(o.first.elapsed.as_secs_f64() + detail),
                calls
            )
        },
    );
    row("**idle list sweep**: time", &|o| {
        format!("{:.1} s", o.idle.elapsed.as_secs_f64())
    });
    row("— provider calls (list pages) / pages", &|o| {
        format!("{} / {}", o.idle.calls.sims, o.idle.pages)
    });
    row("— SIMs changed / events stored", &|o| {
        format!("{} / {}", o.idle.sims_changed, o.idle.events)
    });
    row(
        &format!(
            "**connector loops** (`Connector::spawn`) for {} s: list calls + per-SIM calls",
            settings.freshness_window.as_secs()
        ),
        &|o| format!("{} + {}", o.freshness.calls.list, o.freshness.calls.per_sim()),
    );
    row(
        "— of the per-SIM calls: usage calls (usage round + safety net)",
        &|o| {
            format!(
                "{} ({:.2}/s)",
                o.freshness.calls.usage,
                rate(o.freshness.calls.usage, o.freshness.elapsed)
            )
        },
    );
    row("— usage-round period at that rate (N ÷ usage calls/s)", &|o| {
        hours(o.sims as f64 / rate(o.freshness.calls.usage.max(1), o.freshness.elapsed))
    });
    row("— calls/s (all `/v1/sims…`)", &|o| {
        format!("{:.2}", rate(o.freshness.calls.sims, o.freshness.elapsed))
    });
    row("— SIMs refreshed / per s", &|o| {
        format!(
            "{} / {:.2}",
            o.freshness.sims_refreshed,
            o.freshness.sims_refreshed as f64 / o.freshness.elapsed.as_secs_f64()
        )
    });
    row("— events stored", &|o| o.freshness.events.to_string());
    row("— SIMs made to use data in the window (activity)", &|o| {
        o.freshness.activity.to_string()
    });
    row(
        "**oldest usage age** at the end (`usage_as_of`: last usage call), measured",
        &|o| match o.freshness.oldest_usage_age {
            Some(age) => hours(age.as_secs_f64()),
            None => "not reached (some SIM has had no usage call)".into(),
        },
    );
    row("period of any per-SIM refresh at the measured rate", &|o| {
        hours(o.sims as f64 * o.freshness.elapsed.as_secs_f64() / o.freshness.sims_refreshed.max(1) as f64)
    });
    row(
        "— modelled: N × calls per SIM / (9 − list pages / (300 s + idle sweep))",
        &|o| {
            let per_sim = o.detail.calls.sims as f64 / o.detail.sims.max(1) as f64;
            let list_share = o.idle.pages as f64 / (POLL_INTERVAL_SECS as f64 + o.idle.elapsed.as_secs_f64());
            hours(o.sims as f64 * per_sim / (9.0 - list_share))
        },
    );
    row(
        "— oldest per-SIM refresh (`detail_synced_at`) at the end",
        &|o| match o.freshness.oldest_refresh_age {
            Some(age) => hours(age.as_secs_f64()),
            None => format!(
                "not reached ({} SIMs never refreshed yet)",
                o.freshness.never_refreshed
            ),
        },
    );
    row("max `/v1/sims…` calls in any second (limit 10) / 429s", &|o| {
        let phases = [&o.first.calls, &o.detail.calls, &o.idle.calls, &o.freshness.calls];
        format!(
            "{} / {}",
            phases.iter().map(|c| c.max_in_one_second).max().unwrap_or(0),
            phases.iter().map(|c| c.rate_limited).sum::<u64>()
        )
    });
    row("load average (1/5/15 min) before → after", &|o| {
        format!("{} → {}", o.load[0], o.load[1])
    });
}
