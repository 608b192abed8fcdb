-- The fleet's history: what `GET /fleet/summary?as_of=` answers from (the dashboard's time
-- slider). A read model like the others: written by the projectors in the transaction that
-- applies the events, rebuilt by `projectors rebuild` (model `fleet`).
--
-- Every figure of the fleet summary (SIMs by status, changes pending, quota sums and counts,
-- SMS by status) is a sum over read-model rows. When an event changes a row, the projector
-- records what the change did to each figure (the row's contribution after the event minus
-- before), at the event's `recorded_at`. A figure as of T is then the sum of its changes up
-- to T: whole hours from `fleet_history_hourly`, the rest of T's hour from `fleet_history`,
-- so the answer reads a few thousand rows whatever the size of the fleet.

CREATE TABLE fleet_history (
    -- The event's global position (0: the opening balance below).
    position     bigint      NOT NULL,
    -- `sims.<status>`, `sims.changes_pending`, `<data|sms>.<total|remaining|warning|exhausted|
    -- expired|topups_pending>`, `sms_messages.<status>`.
    metric       text        NOT NULL,
    recorded_at  timestamptz NOT NULL,
    delta        bigint      NOT NULL,
    PRIMARY KEY (position, metric)
);
CREATE INDEX fleet_history_by_time ON fleet_history (recorded_at);

-- The same changes summed per hour (UTC), per figure.
CREATE TABLE fleet_history_hourly (
    bucket  timestamptz NOT NULL,
    metric  text        NOT NULL,
    delta   bigint      NOT NULL,
    PRIMARY KEY (bucket, metric)
);

-- When the history does not reach back to the first event: before `since` the figures are not
-- known (only the status counts are, from `sim_status_history`). Empty: the history is
-- complete (a new installation, or after a rebuild, whose copy of this table is empty).
CREATE TABLE fleet_history_origin (
    since   timestamptz NOT NULL,
    reason  text        NOT NULL
);

-- An installation with read models already filled: their current sums become the opening
-- balance, recorded now; a rebuild (`projectors rebuild --model fleet`) derives the whole
-- history from the log instead.
DO $opening$
BEGIN
    IF EXISTS (SELECT 1 FROM sims) OR EXISTS (SELECT 1 FROM sim_quotas) OR EXISTS (SELECT 1 FROM sms_messages) THEN
        INSERT INTO fleet_history (position, metric, recorded_at, delta)
        SELECT 0, metric, now(), delta FROM (
            SELECT 'sims.' || status AS metric, count(*) AS delta FROM sims GROUP BY status
            UNION ALL SELECT 'sims.changes_pending', count(*) FROM sims WHERE pending_change IS NOT NULL
            UNION ALL SELECT kind || '.total', sum(total) FROM sim_quotas GROUP BY kind
            UNION ALL SELECT kind || '.remaining', sum(remaining) FROM sim_quotas GROUP BY kind
            UNION ALL SELECT kind || '.warning', count(*) FROM sim_quotas
                WHERE quota_state(total, remaining) = 'warning' GROUP BY kind
            UNION ALL SELECT kind || '.exhausted', count(*) FROM sim_quotas WHERE exhausted GROUP BY kind
            UNION ALL SELECT kind || '.expired', count(*) FROM sim_quotas WHERE expired GROUP BY kind
            UNION ALL SELECT kind || '.topups_pending', count(*) FROM sim_quotas
                WHERE pending_topup_id IS NOT NULL GROUP BY kind
            UNION ALL SELECT 'sms_messages.' || status, count(*) FROM sms_messages GROUP BY status
        ) opening WHERE delta <> 0;
        INSERT INTO fleet_history_hourly (bucket, metric, delta)
        SELECT date_trunc('hour', recorded_at, 'UTC'), metric, delta FROM fleet_history;
        INSERT INTO fleet_history_origin (since, reason) VALUES (now(),
            'the fleet history starts when it was added to an installation with read models '
            'already filled; `projectors rebuild --model fleet` derives it from the whole log');
    END IF;
END
$opening$;
