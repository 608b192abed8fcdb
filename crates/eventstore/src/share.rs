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
    /// How far the log was read: every event of the share up to here is in `events`, so a
    /// partition's checkpoint may move here (past the other shares' events too). `None`:
    /// nothing was readable.
    pub through: Option<LogCursor>,
    /// The read stopped at one of its bounds (the share's `limit`, or the rows it may scan):
    /// more may follow right after `through`.
    pub more: bool,
}

impl GlobalLog {
    /// Up to `limit` events of `share` after `after` and up to `up_to`, below the horizon, on
    /// the caller's connection, found among at most `limit × share.of` rows of the log; and
    /// how far that covers the log (see [`ShareRead`]).
    ///
    /// The log is scanned in its own order (its index) over a bounded number of rows, and the
    /// share is picked out here with [`partition_of`], then its events are read by position.
    /// A filter on the partition in SQL would leave the planner blind to its selectivity
    /// (it chose a sequential scan and a sort of the whole table for every range: 190 ms per
    /// range over 50,000 events, which made 2 partitions 3× slower than one).
    pub async fn read_share_on(
        conn: &mut PgConnection,
        after: LogCursor,
        up_to: LogCursor,
        limit: i64,
        share: Share,
    ) -> Result<ShareRead, StoreError> {
        let limit = limit.max(1);
        if share.is_whole() {
            let events = Self::read_range_on(conn, after, up_to, limit).await?;
            let through = events.last().map(LogCursor::after);
            let more = events.len() as i64 == limit;
            return Ok(ShareRead {
                events,
                through,
                more,
            });
        }
        let scan = limit.saturating_mul(i64::from(share.of));
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            // The alias keeps ORDER BY on the xid8 column (an output column named
            // `transaction_id` would sort as text, and not by the index).
            "SELECT transaction_id::text AS transaction_id_text, position, iccid FROM events \
             WHERE (transaction_id, position) > ($1::text::xid8, $2) \
               AND (transaction_id, position) <= ($3::text::xid8, $4) \
               AND transaction_id < (SELECT event_log_horizon()) \
             ORDER BY events.transaction_id, events.position \
             LIMIT $5",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.position)
        .bind(up_to.transaction_id.to_string())
        .bind(up_to.position)
        .bind(scan)
        .fetch_all(&mut *conn)
        .await?;
        let cursor_of = |(transaction_id, position, _): &(String, i64, String)| {
            LogCursor::from_row(transaction_id, *position)
        };
        let Some(last) = rows.last() else {
            return Ok(ShareRead::default());
        };
        let mut through = cursor_of(last);
        let mut more = rows.len() as i64 == scan;
        let mut own: Vec<&(String, i64, String)> =
            rows.iter().filter(|(_, _, iccid)| share.holds(iccid)).collect();
        if own.len() as i64 > limit {
            own.truncate(limit as usize);
            through = cursor_of(own.last().expect("limit is at least 1"));
            more = true;
        }
        let positions: Vec<i64> = own.iter().map(|(_, position, _)| *position).collect();
        let events = if positions.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as::<_, EventRow>(&format!(
                "{SELECT_EVENT} WHERE position = ANY($1) ORDER BY transaction_id, position"
            ))
            .bind(&positions)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(StoredEvent::from)
            .collect()
        };
        Ok(ShareRead {
            events,
            through: Some(through),
            more,
        })
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
