-- The event store: the record from which every read model is derived.
--
-- Column names follow postgres-es's `events` table (aggregate_type, aggregate_id, sequence,
-- event_type, event_version, payload, metadata), so cqrs-es tooling can read it; the extra
-- columns make the global log gap-safe (see docs/architecture.md, "Global order").
CREATE TABLE events (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence > 0),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    -- The SIM the event concerns; quota and SMS events carry their SIM's ICCID too.
    iccid          text        NOT NULL,
    -- Global position: unique and increasing in insertion order, but NOT commit order.
    position       bigint      GENERATED ALWAYS AS IDENTITY,
    -- The writing transaction: readers of the global log only read rows whose transaction
    -- is older than every transaction still in flight, in (transaction_id, position) order.
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence),
    UNIQUE (position)
);

CREATE INDEX events_global_order ON events (transaction_id, position);
CREATE INDEX events_by_iccid ON events (iccid, position);

-- Events are facts: the log is append-only.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- Idempotency records commit in the same transaction as the command's events, so a crash
-- between the two cannot let a retry apply a command twice.
CREATE TABLE command_idempotency (
    scope           text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    command_id      uuid        NOT NULL,
    response_status smallint    NOT NULL,
    response_body   jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);

CREATE INDEX command_idempotency_created_at ON command_idempotency (created_at);
