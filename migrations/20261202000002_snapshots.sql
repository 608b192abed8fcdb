-- Aggregate snapshots: a cache of an aggregate's state at a version, so that a command loads
-- the snapshot and only the events after it (a SIM gains thousands of usage and connectivity
-- events a year). Deleting every row changes nothing but speed; a snapshot whose
-- `state_version` is not the code's (`Aggregate::STATE_VERSION`), or that does not decode, is
-- ignored.
CREATE TABLE aggregate_snapshots (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    version        bigint      NOT NULL,
    last_position  bigint      NOT NULL,
    state_version  text        NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
