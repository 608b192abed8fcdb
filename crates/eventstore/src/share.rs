//! A share of the global log: the events of the SIMs of one partition (see the
//! `sim_partition` SQL function), for projectors that apply the log in parallel partitions.

use sqlx::PgConnection;

use crate::error::StoreError;
use crate::log::{GlobalLog, LogCursor};
use crate::store::{EventRow, SELECT_EVENT};
use crate::stored::StoredEvent;

/// Partition `index` of `of` (`of == 1`: the whole log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Share {
    pub index: u32,
    pub of: u32,
}

impl Share {
    pub const WHOLE: Share = Share { index: 0, of: 1 };

    pub fn is_whole(self) -> bool {
        self.of <= 1
    }

    /// Whether the SIM `iccid` (an event's `iccid`) is in this share.
    pub fn holds(self, iccid: &str) -> bool {
        self.is_whole() || partition_of(iccid, self.of) == self.index
    }
}

/// The partition of a SIM among `partitions`: Fibonacci hashing of the ICCID's last 18 digits,
/// as the `sim_partition` SQL function computes it (the top 32 bits of x · 2^64/φ mod 2^64,
/// mod `partitions`). Consecutive ICCIDs, as a fleet's usually are, spread evenly.
pub fn partition_of(iccid: &str, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    let digits: Vec<u8> = iccid.bytes().filter(u8::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(18)..];
    let x = tail.iter().fold(0u64, |x, d| x * 10 + u64::from(d - b'0'));
    let hashed = x.wrapping_mul(11_400_714_819_323_198_485);
    ((hashed >> 32) % u64::from(partitions)) as u32
}

/// What [`GlobalLog::read_share_on`] read.
#[derive(Debug, Clone, Default)]
pub struct ShareRead {
    /// The share's events after the cursor, in log order.
    pub events: Vec<StoredEvent>,
    /// How far the log was read: past `events`' last one, and (when fewer than the limit came)
    /// past every other share's events below the horizon too. `None`: nothing was readable.
    pub through: Option<LogCursor>,
}

impl GlobalLog {
    /// Up to `limit` events of `share` after `after` and up to `up_to`, below the horizon, on
    /// the caller's connection; and how far that read covers the log (see [`ShareRead`]), so
    /// a partition's checkpoint moves past the other partitions' events too. The horizon is
    /// taken once and both reads are bounded by it: the set below it cannot change.
    pub async fn read_share_on(
        conn: &mut PgConnection,
        after: LogCursor,
        up_to: LogCursor,
        limit: i64,
        share: Share,
    ) -> Result<ShareRead, StoreError> {
        if share.is_whole() {
            let events = Self::read_range_on(conn, after, up_to, limit).await?;
            let through = events.last().map(LogCursor::after);
            return Ok(ShareRead { events, through });
        }
        let (horizon, last): (String, Option<(String, i64)>) = {
            let row: (String, Option<String>, Option<i64>) = sqlx::query_as(
                "WITH h AS (SELECT event_log_horizon() AS xmin) \
                 SELECT h.xmin::text, l.transaction_id::text, l.position FROM h LEFT JOIN LATERAL ( \
                   SELECT transaction_id, position FROM events \
                   WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                     AND (transaction_id, position) <= ($3::text::xid8, $4) \
                     AND transaction_id < h.xmin \
                   ORDER BY transaction_id DESC, position DESC LIMIT 1) l ON true",
            )
            .bind(after.transaction_id.to_string())
            .bind(after.position)
            .bind(up_to.transaction_id.to_string())
            .bind(up_to.position)
            .fetch_one(&mut *conn)
            .await?;
            (row.0, row.1.zip(row.2))
        };
        let Some((last_txid, last_position)) = last else {
            return Ok(ShareRead::default());
        };
        let rows = sqlx::query_as::<_, EventRow>(&format!(
            "{SELECT_EVENT} \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND (transaction_id, position) <= ($3::text::xid8, $4) \
               AND transaction_id < $5::text::xid8 \
               AND sim_partition(iccid, $6) = $7 \
             ORDER BY transaction_id, position \
             LIMIT $8"
        ))
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(up_to.transaction_id.to_string())
        .bind(up_to.position)
        .bind(&horizon)
        .bind(share.of as i32)
        .bind(share.index as i32)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let events: Vec<StoredEvent> = rows.into_iter().map(StoredEvent::from).collect();
        let through = if events.len() as i64 >= limit {
            events.last().map(LogCursor::after)
        } else {
            Some(LogCursor {
                transaction_id: last_txid.parse().unwrap_or_default(),
                position: last_position,
            })
        };
        Ok(ShareRead { events, through })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_consecutive_iccids_and_ignore_the_rest() {
        let mut counts = [0u32; 4];
        for n in 0..10_000u64 {
            counts[partition_of(&format!("8988303{n:012}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (2_300..=2_700).contains(c)), "{counts:?}");
        assert_eq!(partition_of("8988303000000000019", 1), 0);
        assert_eq!(partition_of("", 4), 0);
        // Only the last 18 digits count, and non-digits not at all.
        assert_eq!(
            partition_of("8988303000000000019", 7),
            partition_of("x98 8303000000000019", 7)
        );
        assert!(
            Share { index: 2, of: 4 }.holds("8988303000000000019")
                == (partition_of("8988303000000000019", 4) == 2)
        );
        assert!(Share::WHOLE.holds("anything"));
    }
}
