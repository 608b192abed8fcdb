-- Change-driven polling (issue 13, point 3; owner: sync-connector). Which parts of a SIM's
-- per-SIM refresh are due is kept here, so the decisions survive a restart:
--   due_parts: bits of the calls due (1 connectivity and network events, 2 data quota,
--              4 SMS quota, 8 usage, 16 SMS list); `detail_due` stays "some part is due",
--              and a SIM that is due with no bit set (rows from before) gets every part.
--   full_due_at: when the SIM's daily full refresh (the safety net) is due; NULL (rows from
--              before) means `detail_synced_at` + SYNC_DETAIL_INTERVAL_SECS.
--   usage_due_at: when the SIM's usage is next polled by the usage round (streamer off: 1NCE's
--              list shows the quota's total and level, not what is left, so traffic is not
--              seen in the list until a level is crossed); NULL: now.
--   usage_as_of: the start of the SIM's last usage call (its usage is complete up to then).
ALTER TABLE sync_sims
    ADD COLUMN due_parts integer NOT NULL DEFAULT 0,
    ADD COLUMN full_due_at timestamptz,
    ADD COLUMN usage_due_at timestamptz,
    ADD COLUMN usage_as_of timestamptz;

CREATE INDEX sync_sims_full_due ON sync_sims (shard, full_due_at NULLS FIRST, iccid);
CREATE INDEX sync_sims_usage_due ON sync_sims (shard, usage_due_at NULLS FIRST, iccid);
