//! What happens by itself as simulated time passes (only when `autonomous` is on): data
//! sessions and MO SMS per SIM profile (consuming quota), rare status changes, quota expiry,
//! and delivery of buffered MT SMS.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use super::changes::{push_event, set_enabled};
use super::generate::profile;
use super::quota::QuotaKind;
use super::records::{DayUsage, SmsDirection, SmsState};
use super::sms::{deliver, MT_DELIVERY_DELAY_SECS};
use super::usage::{auto_top_up, consume, record_usage};
use super::Fleet;

/// Chance per SIM per simulated day that its status flips (about one SIM a day per 2,000).
const STATUS_FLIPS_PER_DAY: f64 = 0.0005;

impl Fleet {
    /// Moves the clock; with `autonomous` on, applies what happens meanwhile, one calendar day
    /// at a time so usage lands on the right dates.
    pub fn advance(&mut self, by: Duration) {
        if by <= Duration::zero() {
            return;
        }
        let end = self.now + by;
        if !self.autonomous {
            self.now = end;
            return;
        }
        while self.now < end {
            let next_midnight = (self.now.date_naive() + Duration::days(1))
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc())
                .unwrap_or(end);
            let chunk_end = end.min(next_midnight);
            self.simulate(self.now, chunk_end);
            self.now = chunk_end;
        }
    }

    fn simulate(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let span = to - from;
        let span_ms = span.num_milliseconds().max(1);
        let day_share = span_ms as f64 / 86_400_000.0;
        let date = from.date_naive();
        let seed = self.shape.seed;
        let (topup_data, topup_sms) = (self.topup_data_bytes, self.topup_sms);
        let mut mo_messages = Vec::new();
        for i in 0..self.sims.len() {
            let rng = &mut self.rng;
            let journal = &mut self.journal;
            let sim = &mut self.sims[i];
            let at = from + Duration::milliseconds(rng.random_range(0..span_ms));
            if !sim.data.expired && sim.data.expiry <= to {
                let expiry = sim.data.expiry.max(from);
                sim.data.expire(expiry);
                sim.sms.expire(expiry);
                push_event(
                    sim,
                    journal,
                    expiry,
                    "Data and SMS quota expired",
                    "Warning",
                    true,
                );
            }
            if rng.random_bool((STATUS_FLIPS_PER_DAY * day_share).min(1.0)) {
                let enabled = !sim.enabled;
                set_enabled(sim, journal, enabled, at);
            }
            if let Some(extra) = sim.extra.as_mut() {
                for sms in extra.sms.iter_mut() {
                    let due = sms.submitted + Duration::seconds(MT_DELIVERY_DELAY_SECS);
                    if sms.direction == SmsDirection::Mt && sms.state == SmsState::Buffered && due <= to {
                        deliver(sms, due.max(from));
                    }
                }
            }
            if !sim.enabled {
                continue;
            }
            let p = profile(seed, sim.iccid);
            let sessions = poisson(rng, p.sessions_per_day * day_share);
            if sessions > 0 && sim.data.remaining > 0 {
                let wanted: u64 = (0..sessions)
                    .map(|_| rng.random_range(200..=p.session_bytes_max))
                    .sum();
                let used = consume(sim, journal, QuotaKind::Data, at, |q| q.consume(wanted, at));
                if used > 0 {
                    let rx = used - used * 3 / 10;
                    // The sessions as one, from `at` for a while (half a minute plus a
                    // second per 10 kB), ending within the chunk.
                    let end = to.min(at + Duration::seconds(30 + (used / 10_000) as i64));
                    journal.session(sim, at, end, rx, used - rx);
                    record_usage(
                        sim,
                        journal,
                        date,
                        DayUsage {
                            rx_bytes: rx,
                            tx_bytes: used - rx,
                            ..Default::default()
                        },
                        (at, end),
                    );
                    auto_top_up(sim, journal, topup_data, topup_sms, at);
                }
            }
            if poisson(rng, p.mo_sms_per_day * day_share) > 0 && sim.sms.remaining > 0 {
                mo_messages.push((sim.iccid, at));
            }
        }
        for (n, (iccid, at)) in mo_messages.into_iter().enumerate() {
            let payload = format!("{{\"seq\":{n},\"battery\":{}}}", self.rng.random_range(5..100));
            // The SIM exists (it was just iterated), so this cannot fail.
            let _ = self.receive_mo_sms(iccid, &payload, at);
        }
    }
}

/// Knuth's method; the rates here are small, so it loops a few times at most.
fn poisson(rng: &mut impl Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit && k < 10_000 {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn poisson_mean_is_about_lambda() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 20_000;
        let sum: u32 = (0..n).map(|_| poisson(&mut rng, 3.0)).sum();
        let mean = f64::from(sum) / f64::from(n);
        assert!((mean - 3.0).abs() < 0.1, "{mean}");
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }
}
