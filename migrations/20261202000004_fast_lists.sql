-- Lists that stay fast over 100,000 SIMs.

-- Label search (`GET /sims?label=`, a case-insensitive substring): a trigram index, which
-- `ILIKE '%…%'` uses for patterns of three characters or more. pg_trgm ships with PostgreSQL
-- (contrib) and is a trusted extension; where it is missing the search still works, by scan.
DO $trgm$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS sims_label_trgm ON sims USING gin (label gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: label search scans the sims table';
    END IF;
END
$trgm$;

-- Fleet usage (`GET /fleet/usage`): one row per bucket for the whole fleet, so a month
-- answers from 720 hourly (or 30 daily) rows instead of summing one row per SIM and bucket.
-- With TimescaleDB: continuous aggregates over `sim_usage`, like the per-SIM ones (real-time
-- aggregation on, so the newest bucket is included). Without it: plain tables the projector
-- adds to in the same transaction as the per-SIM rollups, filled here from those.
DO $fleet$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relname = 'sim_usage_hourly' AND c.relkind = 'v'
    ) THEN
        EXECUTE $view$
            CREATE MATERIALIZED VIEW fleet_usage_hourly WITH (timescaledb.continuous) AS
            SELECT time_bucket(INTERVAL '1 hour', observed_at) AS bucket,
                   sum(data_bytes)::bigint AS data_bytes, sum(sms_mo)::bigint AS sms_mo,
                   sum(sms_mt)::bigint AS sms_mt
            FROM sim_usage GROUP BY bucket WITH NO DATA
        $view$;
        EXECUTE $view$
            CREATE MATERIALIZED VIEW fleet_usage_daily WITH (timescaledb.continuous) AS
            SELECT time_bucket(INTERVAL '1 day', observed_at) AS bucket,
                   sum(data_bytes)::bigint AS data_bytes, sum(sms_mo)::bigint AS sms_mo,
                   sum(sms_mt)::bigint AS sms_mt
            FROM sim_usage GROUP BY bucket WITH NO DATA
        $view$;
        EXECUTE 'ALTER MATERIALIZED VIEW fleet_usage_hourly SET (timescaledb.materialized_only = false)';
        EXECUTE 'ALTER MATERIALIZED VIEW fleet_usage_daily SET (timescaledb.materialized_only = false)';
        PERFORM add_continuous_aggregate_policy('fleet_usage_hourly', start_offset => INTERVAL '3 days',
            end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
        PERFORM add_continuous_aggregate_policy('fleet_usage_daily', start_offset => INTERVAL '30 days',
            end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    ELSE
        CREATE TABLE fleet_usage_hourly (
            bucket     timestamptz PRIMARY KEY,
            data_bytes bigint      NOT NULL DEFAULT 0,
            sms_mo     bigint      NOT NULL DEFAULT 0,
            sms_mt     bigint      NOT NULL DEFAULT 0
        );
        CREATE TABLE fleet_usage_daily (
            bucket     timestamptz PRIMARY KEY,
            data_bytes bigint      NOT NULL DEFAULT 0,
            sms_mo     bigint      NOT NULL DEFAULT 0,
            sms_mt     bigint      NOT NULL DEFAULT 0
        );
        INSERT INTO fleet_usage_hourly
            SELECT bucket, sum(data_bytes), sum(sms_mo), sum(sms_mt) FROM sim_usage_hourly GROUP BY bucket;
        INSERT INTO fleet_usage_daily
            SELECT bucket, sum(data_bytes), sum(sms_mo), sum(sms_mt) FROM sim_usage_daily GROUP BY bucket;
    END IF;
END
$fleet$;
