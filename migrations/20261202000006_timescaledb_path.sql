-- Which storage this database's read models were created with, chosen once by
-- 20261128000003 (TimescaleDB when the server offered it then). Later migrations branch on
-- this record, never on what the server offers today, so installing or removing the extension
-- afterwards cannot leave a half-converted schema. One row.
CREATE TABLE read_model_storage (
    only_row    boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
    storage     text        NOT NULL CHECK (storage IN ('timescaledb', 'postgres')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO read_model_storage (storage)
SELECT CASE WHEN c.relkind = 'v' THEN 'timescaledb' ELSE 'postgres' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = 'sim_usage_hourly';

-- With TimescaleDB: the UTC days in which usage rows were written below a continuous
-- aggregate's refresh horizon (late usage reports, a rebuild's inserts). Real-time aggregation
-- only covers buckets above the horizon, so such rows are invisible in the aggregates until
-- the day is refreshed. The projector registers the day in the transaction that writes the
-- rows and refreshes it right after the commit (`projectors::rollup_refresh`); the query API's
-- consistency wait also waits for the days registered by the events before a token. The
-- least log cursor of the events waiting on each day; `registrations` counts upserts, so a
-- refresh deletes only what it has seen. Always empty on plain PostgreSQL.
CREATE TABLE usage_rollup_refreshes (
    day               timestamptz PRIMARY KEY,
    first_transaction xid8        NOT NULL,
    first_position    bigint      NOT NULL,
    registrations     bigint      NOT NULL DEFAULT 1,
    registered_at     timestamptz NOT NULL DEFAULT now()
);
