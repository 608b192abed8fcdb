//! The applier: turns the inbox's records into commands on the aggregates, through the same
//! event store and domain rules as polling.
//!
//! Exactly once: every command a record causes carries the idempotency key
//! `streamer:<stream>:<record id>`, stored in the transaction of its events. The record is
//! marked settled afterwards; a crash in between leaves it `received`, and applying it again
//! finds the key and stores nothing. Records of one SIM are applied in the order they
//! happened; a connectivity or status record older than one already applied is skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{NaiveDate, NaiveTime};
use domain::{Iccid, ProviderStatus, Quota, QuotaCommand, QuotaKind, Sim, SimCommand};
use futures::StreamExt;

use super::inbox::{Claimed, Inbox, Settled};
use super::metrics::StreamerMetrics;
use super::record::{Meaning, Record, StatusChange};
use crate::error::SyncError;
use crate::issue::{quota_id, Issuer};
use crate::last_seen::LastSeen;
use crate::poll::Parts;

#[derive(Clone)]
pub struct Applier {
    inbox: Inbox,
    issuer: Issuer,
    last_seen: LastSeen,
    metrics: StreamerMetrics,
    batch: i64,
    concurrency: usize,
}

/// What one SIM's records came to, and the error that stopped them (they stay `received`).
type SimOutcome = (Vec<(i64, Settled, &'static str)>, Option<SyncError>);

impl Applier {
    pub fn new(
        inbox: Inbox,
        issuer: Issuer,
        last_seen: LastSeen,
        metrics: StreamerMetrics,
        batch: i64,
        concurrency: usize,
    ) -> Self {
        Self {
            inbox,
            issuer,
            last_seen,
            metrics,
            batch,
            concurrency,
        }
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Claims one batch of waiting records and applies it, several SIMs at once; returns how
    /// many records were settled. A database or event-store error leaves the records it
    /// stopped at waiting and is returned after the others are settled.
    pub async fn apply_waiting(&self) -> Result<usize, SyncError> {
        let claimed = self.inbox.claim(self.batch).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut by_sim: BTreeMap<Option<String>, Vec<Claimed>> = BTreeMap::new();
        for record in claimed {
            by_sim
                .entry(record.record.iccid.clone())
                .or_default()
                .push(record);
        }
        let mut results = futures::stream::iter(by_sim)
            .map(|(iccid, mut records)| async move {
                records.sort_by_key(|c| (c.record.occurred_at, c.record.id));
                self.apply_sim(iccid.as_deref(), records).await
            })
            .buffer_unordered(self.concurrency);
        let mut settled = Vec::new();
        let mut failure = None;
        while let Some((outcomes, error)) = results.next().await {
            settled.extend(outcomes);
            if let Some(error) = error {
                failure = Some(error);
            }
        }
        let rows: Vec<(i64, Settled)> = settled.iter().map(|(seq, s, _)| (*seq, s.clone())).collect();
        self.inbox.settle(&rows).await?;
        for (_, outcome, kind) in &settled {
            self.metrics
                .settled
                .with_label_values(&[kind, outcome.state()])
                .inc();
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(settled.len()),
        }
    }

    /// Hands the records of SIMs registered since back to the applier; returns how many.
    pub async fn release_registered(&self, limit: i64) -> Result<u64, SyncError> {
        let mut released = 0;
        for iccid in self.inbox.pending_sims(limit).await? {
            if self
                .issuer
                .store()
                .load::<Sim>(&iccid)
                .await?
                .state
                .is_registered()
            {
                released += self.inbox.release(&iccid).await?;
            }
        }
        Ok(released)
    }

    async fn apply_sim(&self, iccid: Option<&str>, records: Vec<Claimed>) -> SimOutcome {
        let settle_all = |settled: Settled| {
            let outcomes = records
                .iter()
                .map(|c| (c.seq, settled.clone(), c.record.meaning.kind()))
                .collect();
            (outcomes, None)
        };
        let Some(iccid) = iccid else {
            return settle_all(Settled::Skipped("names no SIM (a service-profile event)".into()));
        };
        let iccid = match Iccid::parse(iccid) {
            Ok(iccid) => iccid,
            Err(error) => return settle_all(Settled::Refused(format!("stored ICCID: {error}"))),
        };
        let mut outcomes = Vec::with_capacity(records.len());
        let mut unknown = false;
        // The streamed usage applied so far per day: read from the inbox once per day a batch
        // touches, then kept up to date here (this batch's records are not marked applied in
        // the inbox until the batch settles).
        let mut streamed: BTreeMap<NaiveDate, [u64; 3]> = BTreeMap::new();
        for claimed in &records {
            if let Some((day, _)) = usage_of(&claimed.record) {
                if !unknown && !streamed.contains_key(&day) {
                    match self.inbox.applied_usage(iccid.as_str(), day).await {
                        Ok(applied) => streamed.insert(day, applied),
                        Err(error) => return (outcomes, Some(error.into())),
                    };
                }
            }
            // Once the SIM proves unknown, its later records wait too (their order is kept).
            let settled = if unknown {
                Ok(Settled::Pending)
            } else {
                self.apply_one(&iccid, &claimed.record, &streamed).await
            };
            match settled {
                Ok(settled) => {
                    unknown = settled == Settled::Pending;
                    if let (Settled::Applied, Some((day, delta))) = (&settled, usage_of(&claimed.record)) {
                        let sum = streamed.entry(day).or_default();
                        *sum = add(*sum, delta);
                    }
                    outcomes.push((claimed.seq, settled, claimed.record.meaning.kind()));
                }
                Err(error) => return (outcomes, Some(error)),
            }
        }
        (outcomes, None)
    }

    async fn apply_one(
        &self,
        iccid: &Iccid,
        record: &Record,
        streamed: &BTreeMap<NaiveDate, [u64; 3]>,
    ) -> Result<Settled, SyncError> {
        let key = format!("streamer:{}:{}", record.stream.as_str(), record.id);
        let at = record.occurred_at;
        let outcome = match &record.meaning {
            Meaning::Data { day, bytes } => {
                let before = streamed.get(day).copied().unwrap_or_default();
                self.usage(iccid, &key, record, *day, before, [*bytes, 0, 0])
                    .await
            }
            Meaning::Sms { day, mo, mt } => {
                let before = streamed.get(day).copied().unwrap_or_default();
                let outcome = self.usage(iccid, &key, record, *day, before, [0, *mo, *mt]).await;
                if *mo > 0 && matches!(outcome, Ok(Some(_))) {
                    // A device sent SMS: the stream counts them, the SMS list has their text.
                    self.last_seen.mark_parts_due(iccid.as_str(), Parts::SMS).await?;
                }
                outcome
            }
            Meaning::OtherUsage { traffic_type } => {
                return Ok(Settled::Skipped(format!(
                    "traffic type {traffic_type:?} is not counted by the platform"
                )))
            }
            Meaning::Location { .. } | Meaning::Session { .. } | Meaning::SessionClosed => {
                if self.inbox.superseded(record, "connectivity").await? {
                    return Ok(superseded());
                }
                let meaning = record.meaning.clone();
                self.on_sim(iccid, &key, record, |sim: &Sim| {
                    vec![connectivity(sim, &meaning, at)]
                })
                .await
            }
            Meaning::Status { status } => {
                if self.inbox.superseded(record, "status").await? {
                    return Ok(superseded());
                }
                let command = match status {
                    StatusChange::Activated => SimCommand::RecordProviderStatus {
                        status: ProviderStatus::Enabled,
                        at,
                    },
                    StatusChange::Suspended => SimCommand::RecordProviderStatus {
                        status: ProviderStatus::Disabled,
                        at,
                    },
                    StatusChange::Deleted => SimCommand::Terminate {
                        reason: Some("deleted at 1NCE (Data Streamer event)".into()),
                        at,
                    },
                };
                self.on_sim(iccid, &key, record, |_: &Sim| vec![command.clone()])
                    .await
            }
            Meaning::QuotaThreshold { quota, percentage } => {
                let percentage = *percentage;
                // `threshold_percentage` is read as the share left when the notice goes (the
                // API's example is 20; unconfirmed): at most p % is left. The poll that
                // follows brings the exact figure.
                self.quota(iccid, *quota, &key, record, move |q: &Quota| {
                    percentage
                        .map(|p| (u128::from(q.total()) * u128::from(p) / 100) as u64)
                        .filter(|left| *left < q.remaining())
                        .map(|remaining| QuotaCommand::RecordConsumption { remaining, at })
                })
                .await
            }
            Meaning::QuotaUsedUp { quota } => {
                self.quota(iccid, *quota, &key, record, move |q: &Quota| {
                    (q.remaining() > 0).then_some(QuotaCommand::RecordConsumption { remaining: 0, at })
                })
                .await
            }
            Meaning::QuotaExpired { quota } => {
                self.quota(iccid, *quota, &key, record, move |_: &Quota| {
                    Some(QuotaCommand::Expire { at })
                })
                .await
            }
            Meaning::QuotaAssigned { quota } => {
                // The assignment's `detail` is not valid JSON: the quota is polled next.
                self.last_seen
                    .mark_parts_due(iccid.as_str(), quota_part(*quota))
                    .await?;
                Ok(Some(0))
            }
            Meaning::OtherEvent { event_type } => {
                return Ok(Settled::Skipped(format!(
                    "event type {event_type:?} changes nothing the platform keeps"
                )))
            }
        };
        match outcome {
            Ok(Some(_)) => Ok(Settled::Applied),
            Ok(None) => Ok(Settled::Pending),
            Err(error @ (SyncError::Database(_) | SyncError::Store(_))) => Err(error),
            Err(error) => Ok(Settled::Refused(error.to_string())),
        }
    }

    /// The record's usage on its day. Polling reports the same day's total, so neither source
    /// adds to the other: the day's total on the SIM is the larger of the polled total and the
    /// sum of the streamed records (each a lower bound of what was used; a record the poll
    /// already counted is not counted again). `so_far` is the day's streamed usage applied
    /// before this record.
    async fn usage(
        &self,
        iccid: &Iccid,
        key: &str,
        record: &Record,
        day: NaiveDate,
        so_far: [u64; 3],
        delta: [u64; 3],
    ) -> Result<Option<usize>, SyncError> {
        if delta == [0; 3] {
            return Ok(Some(0));
        }
        let streamed = add(so_far, delta);
        let period_start = day.and_time(NaiveTime::MIN).and_utc();
        let period_end = period_start + chrono::Duration::days(1);
        self.on_sim(iccid, key, record, |sim: &Sim| {
            let before = sim
                .usage_for(period_start)
                .map_or([0; 3], |p| [p.data_bytes, p.sms_mo, p.sms_mt]);
            let total = [0, 1, 2].map(|i| before[i].max(streamed[i]));
            vec![SimCommand::RecordUsage {
                period_start,
                period_end,
                data_bytes: total[0],
                sms_mo: total[1],
                sms_mt: total[2],
            }]
        })
        .await
    }

    /// Issues on the SIM what `decide` makes of its state, once per record `key`; `None` when
    /// the SIM is not registered (seen in the issuer's own load, so it costs no extra read).
    async fn on_sim(
        &self,
        iccid: &Iccid,
        key: &str,
        record: &Record,
        decide: impl Fn(&Sim) -> Vec<SimCommand>,
    ) -> Result<Option<usize>, SyncError> {
        let unregistered = AtomicBool::new(false);
        let stored = self
            .issuer
            .issue_once::<Sim>(iccid.as_str(), iccid, key, record, |sim: &Sim| {
                unregistered.store(!sim.is_registered(), Ordering::Relaxed);
                if sim.is_registered() {
                    decide(sim)
                } else {
                    Vec::new()
                }
            })
            .await?;
        Ok((!unregistered.load(Ordering::Relaxed)).then_some(stored))
    }

    /// A quota record: the SIM's quotas are due a poll, and `decide` may record what the
    /// record itself says. A quota the platform has not been told about yet gets only the poll.
    async fn quota(
        &self,
        iccid: &Iccid,
        kind: QuotaKind,
        key: &str,
        record: &Record,
        decide: impl Fn(&Quota) -> Option<QuotaCommand>,
    ) -> Result<Option<usize>, SyncError> {
        if !self
            .issuer
            .store()
            .load::<Sim>(iccid.as_str())
            .await?
            .state
            .is_registered()
        {
            return Ok(None);
        }
        self.last_seen
            .mark_parts_due(iccid.as_str(), quota_part(kind))
            .await?;
        self.issuer
            .issue_once::<Quota>(&quota_id(iccid, kind), iccid, key, record, |q: &Quota| {
                if q.is_assigned() {
                    decide(q).into_iter().collect()
                } else {
                    Vec::new()
                }
            })
            .await
            .map(Some)
    }
}

/// The refresh part that polls a quota of this kind.
fn quota_part(kind: QuotaKind) -> Parts {
    match kind {
        QuotaKind::Data => Parts::DATA_QUOTA,
        QuotaKind::Sms => Parts::SMS_QUOTA,
    }
}

fn superseded() -> Settled {
    Settled::Skipped("superseded by a later record of the SIM already applied".into())
}

/// The SIM's connectivity with what the record changes; the rest stays as known.
fn connectivity(sim: &Sim, meaning: &Meaning, at: chrono::DateTime<chrono::Utc>) -> SimCommand {
    let known = sim.connectivity();
    let (mut network, mut country, mut rat, mut ip_address) = (
        known.network.clone(),
        known.country.clone(),
        known.rat.clone(),
        known.ip_address.clone(),
    );
    match meaning {
        Meaning::Location {
            network: n,
            country: c,
        } => {
            network = n.clone().or(network);
            country = c.clone().or(country);
        }
        Meaning::Session {
            network: n,
            country: c,
            rat: r,
            ip_address: ip,
        } => {
            network = n.clone().or(network);
            country = c.clone().or(country);
            rat = r.clone().or(rat);
            ip_address = ip.clone().or(ip_address);
        }
        // As polling shows it: no session, no radio access type.
        Meaning::SessionClosed => rat = None,
        _ => {}
    }
    SimCommand::RecordConnectivity {
        network,
        country,
        rat,
        ip_address,
        at,
    }
}

/// A usage record's day and its (data bytes, SMS MO, SMS MT).
fn usage_of(record: &Record) -> Option<(NaiveDate, [u64; 3])> {
    match record.meaning {
        Meaning::Data { day, bytes } => Some((day, [bytes, 0, 0])),
        Meaning::Sms { day, mo, mt } => Some((day, [0, mo, mt])),
        _ => None,
    }
}

fn add(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    [0, 1, 2].map(|i| a[i].saturating_add(b[i]))
}
