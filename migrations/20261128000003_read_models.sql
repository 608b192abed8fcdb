-- Read models: derived from the event log by the projectors, rebuildable at any time
-- (`projectors rebuild`). Nothing here is the record; the `events` table is.

-- The current state of each SIM, with a summary of its quotas.
CREATE TABLE sims (
    iccid            text        PRIMARY KEY,
    imsi             text        NOT NULL,
    msisdn           text,
    label            text,
    tags             text[]      NOT NULL DEFAULT '{}',
    -- inactive | active | suspended | terminated
    status           text        NOT NULL,
    -- activation | suspension, while the provider has not confirmed it
    pending_change   text,
    -- Enabled | Disabled, as 1NCE last reported it
    provider_status  text,
    imei             text,
    imei_lock        boolean     NOT NULL DEFAULT false,
    ip_address       text,
    network          text,
    country          text,
    rat              text,
    last_seen_at     timestamptz,
    data_total       bigint,
    data_remaining   bigint,
    data_expiry      timestamptz,
    sms_total        bigint,
    sms_remaining    bigint,
    sms_expiry       timestamptz,
    registered_at    timestamptz NOT NULL,
    terminated_at    timestamptz,
    -- The SIM aggregate's version (its last event's sequence): the ETag of GET /sims/{iccid}.
    version          bigint      NOT NULL,
    -- The global position of the last event (of any of the SIM's aggregates) applied here.
    last_position    bigint      NOT NULL,
    updated_at       timestamptz NOT NULL
);

-- Prefix filters (ICCID, IMSI, MSISDN) use the pattern ops; tags use GIN.
CREATE INDEX sims_iccid_prefix ON sims (iccid text_pattern_ops);
CREATE INDEX sims_imsi_prefix ON sims (imsi text_pattern_ops);
CREATE INDEX sims_msisdn_prefix ON sims (msisdn text_pattern_ops);
CREATE INDEX sims_status ON sims (status, iccid);
CREATE INDEX sims_tags ON sims USING gin (tags);
CREATE INDEX sims_registered_at ON sims (registered_at, iccid);

-- Quotas, one row per SIM and kind.
CREATE TABLE sim_quotas (
    iccid               text        NOT NULL,
    kind                text        NOT NULL CHECK (kind IN ('data', 'sms')),
    total               bigint      NOT NULL DEFAULT 0,
    remaining           bigint      NOT NULL DEFAULT 0,
    expiry_date         timestamptz,
    period              integer     NOT NULL DEFAULT 0,
    thresholds_crossed  integer[]   NOT NULL DEFAULT '{}',
    exhausted           boolean     NOT NULL DEFAULT false,
    expired             boolean     NOT NULL DEFAULT false,
    pending_topup_id    uuid,
    pending_topup_volume bigint,
    last_topup_at       timestamptz,
    last_topup_status   text,
    version             bigint      NOT NULL,
    last_position       bigint      NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (iccid, kind)
);

-- SMS, mobile-terminated (sent) and mobile-originated (received).
CREATE TABLE sms_messages (
    message_id          uuid        PRIMARY KEY,
    iccid               text        NOT NULL,
    direction           text        NOT NULL CHECK (direction IN ('MT', 'MO')),
    -- requested | submitted | delivered | failed | received
    status              text        NOT NULL,
    payload             text        NOT NULL,
    encoding            text,
    parts               integer,
    source_address      text,
    provider_message_id text,
    failure_reason      text,
    requested_at        timestamptz,
    submitted_at        timestamptz,
    delivered_at        timestamptz,
    failed_at           timestamptz,
    received_at         timestamptz,
    version             bigint      NOT NULL,
    last_position       bigint      NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE INDEX sms_messages_by_sim ON sms_messages (iccid, message_id);

-- Every status change of a SIM, in order.
CREATE TABLE sim_status_history (
    iccid        text        NOT NULL,
    position     bigint      NOT NULL,
    changed_at   timestamptz NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    event_type   text        NOT NULL,
    actor        text,
    PRIMARY KEY (iccid, position)
);

-- Usage as a time series: each row is what one usage report added (the deltas), at the time
-- it was observed (clamped into the provider's reporting period).
CREATE TABLE sim_usage (
    iccid       text        NOT NULL,
    observed_at timestamptz NOT NULL,
    position    bigint      NOT NULL,
    data_bytes  bigint      NOT NULL,
    sms_mo      bigint      NOT NULL,
    sms_mt      bigint      NOT NULL,
    PRIMARY KEY (iccid, observed_at, position)
);

-- The projectors' bookkeeping. One row per projector: the last applied event's global-log
-- cursor and JetStream sequence; a query with a consistency token waits until it is passed.
CREATE TABLE projection_checkpoints (
    projector        text        PRIMARY KEY,
    transaction_id   xid8        NOT NULL,
    position         bigint      NOT NULL,
    stream_sequence  bigint      NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The version of each aggregate a projector has applied: an event at or below it is a
-- duplicate, one beyond the next version is a gap.
CREATE TABLE projection_versions (
    projector       text   NOT NULL,
    aggregate_type  text   NOT NULL,
    aggregate_id    text   NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (projector, aggregate_type, aggregate_id)
);

-- Usage rollups. With TimescaleDB, `sim_usage` becomes a hypertable (compressed after 7 days,
-- kept 1 year) and the rollups continuous aggregates; without it, plain tables that the
-- projector maintains in the same transaction as `sim_usage`. The same queries answer the
-- same either way.
DO $timescale$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('sim_usage', 'observed_at', migrate_data => true);
        EXECUTE 'ALTER TABLE sim_usage SET (timescaledb.compress, timescaledb.compress_segmentby = ''iccid'')';
        PERFORM add_compression_policy('sim_usage', INTERVAL '7 days');
        PERFORM add_retention_policy('sim_usage', INTERVAL '1 year');
        EXECUTE $view$
            CREATE MATERIALIZED VIEW sim_usage_hourly WITH (timescaledb.continuous) AS
            SELECT iccid, time_bucket(INTERVAL '1 hour', observed_at) AS bucket,
                   sum(data_bytes)::bigint AS data_bytes, sum(sms_mo)::bigint AS sms_mo,
                   sum(sms_mt)::bigint AS sms_mt
            FROM sim_usage GROUP BY iccid, bucket WITH NO DATA
        $view$;
        EXECUTE $view$
            CREATE MATERIALIZED VIEW sim_usage_daily WITH (timescaledb.continuous) AS
            SELECT iccid, time_bucket(INTERVAL '1 day', observed_at) AS bucket,
                   sum(data_bytes)::bigint AS data_bytes, sum(sms_mo)::bigint AS sms_mo,
                   sum(sms_mt)::bigint AS sms_mt
            FROM sim_usage GROUP BY iccid, bucket WITH NO DATA
        $view$;
        EXECUTE 'ALTER MATERIALIZED VIEW sim_usage_hourly SET (timescaledb.materialized_only = false)';
        EXECUTE 'ALTER MATERIALIZED VIEW sim_usage_daily SET (timescaledb.materialized_only = false)';
        PERFORM add_continuous_aggregate_policy('sim_usage_hourly', start_offset => INTERVAL '3 days',
            end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
        PERFORM add_continuous_aggregate_policy('sim_usage_daily', start_offset => INTERVAL '30 days',
            end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    ELSE
        CREATE INDEX sim_usage_by_time ON sim_usage (observed_at);
        CREATE TABLE sim_usage_hourly (
            iccid      text        NOT NULL,
            bucket     timestamptz NOT NULL,
            data_bytes bigint      NOT NULL DEFAULT 0,
            sms_mo     bigint      NOT NULL DEFAULT 0,
            sms_mt     bigint      NOT NULL DEFAULT 0,
            PRIMARY KEY (iccid, bucket)
        );
        CREATE TABLE sim_usage_daily (
            iccid      text        NOT NULL,
            bucket     timestamptz NOT NULL,
            data_bytes bigint      NOT NULL DEFAULT 0,
            sms_mo     bigint      NOT NULL DEFAULT 0,
            sms_mt     bigint      NOT NULL DEFAULT 0,
            PRIMARY KEY (iccid, bucket)
        );
        CREATE INDEX sim_usage_hourly_by_time ON sim_usage_hourly (bucket);
        CREATE INDEX sim_usage_daily_by_time ON sim_usage_daily (bucket);
    END IF;
END
$timescale$;
