-- The event pipeline's trust boundary (docs/relay.md, docs/projectors.md).

-- This store's identity. The relay puts it on every message (`Sim-Store-Id`), and checks the
-- stream's tail against it: a stream filled from another database (a second environment on
-- the same NATS, a fresh database against an old stream) is recognised as such, not followed.
CREATE TABLE event_store_identity (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id   uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO event_store_identity DEFAULT VALUES;

-- Events a projector could not apply (an event type written by a newer command-service during
-- a rolling deploy, a payload this code cannot read). They are kept aside so that every other
-- aggregate keeps projecting; later events of the same aggregate wait here behind them, in
-- order. `projectors replay-parked` applies them once the code understands them.
CREATE TABLE parked_events (
    projector       text        NOT NULL,
    position        bigint      NOT NULL,
    transaction_id  xid8        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    iccid           text        NOT NULL,
    error           text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 1,
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, position)
);
CREATE INDEX parked_events_by_aggregate
    ON parked_events (projector, aggregate_type, aggregate_id, sequence);

-- The version guard knows an aggregate is parked without another query.
ALTER TABLE projection_versions ADD COLUMN parked boolean NOT NULL DEFAULT false;

-- A SIM whose events (its own, its quotas' or its messages') are parked is shown as such.
ALTER TABLE sims ADD COLUMN projection text NOT NULL DEFAULT 'complete'
    CHECK (projection IN ('complete', 'parked'));
