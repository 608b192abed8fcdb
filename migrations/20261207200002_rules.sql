-- Rules: the engine's place in the global log (one row, leased so that one command API
-- replica at a time acts) and the record of every firing. Owned by the command API (its rule
-- routes and engine); the rules themselves are event-sourced (aggregate type `rule`).

CREATE TABLE rule_engine (
    name text PRIMARY KEY,
    cursor_transaction_id bigint NOT NULL,
    cursor_position bigint NOT NULL,
    lease_owner uuid,
    lease_until timestamptz
);

-- One row per (rule, causing event): written once, so a rule acts once per event.
CREATE TABLE rule_firings (
    rule_id uuid NOT NULL,
    event_position bigint NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    iccid text NOT NULL,
    action text NOT NULL,
    -- applied, refused (the domain's code) or failed
    outcome text NOT NULL,
    code text,
    message text,
    command_id uuid,
    command_position bigint,
    fired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, event_position)
);

-- A rule's dry run reads the past month of one event type.
CREATE INDEX events_by_type_time ON events (event_type, recorded_at);
