-- Webhooks: subscriptions of downstream systems to the global log, each with its own cursor,
-- and the log of their deliveries. Owned by crates/webhooks; written by the command API (its
-- routes and its dispatcher).

CREATE TABLE webhook_subscriptions (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    description text,
    -- Event types, each exact (`SimSuspended`) or a prefix ending in `*` (`Quota*`, `*`).
    event_types text[] NOT NULL,
    -- The HMAC-SHA256 key of the signatures; shown once, when the subscription is created.
    secret text NOT NULL,
    -- active: delivered; paused: by an operator; failing: given up after the attempts allowed.
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'failing')),
    failure_reason text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The global log's cursor (writing transaction, position) of the last event dealt with:
    -- delivered with a 2xx, or not matching the filter.
    cursor_transaction_id bigint NOT NULL DEFAULT 0,
    cursor_position bigint NOT NULL DEFAULT 0,
    -- Failed attempts at the event after the cursor, and when the next one is due.
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- The dispatcher that holds it (two replicas never send for one subscription at once).
    lease_owner uuid,
    lease_until timestamptz
);

CREATE INDEX webhook_subscriptions_due ON webhook_subscriptions (next_attempt_at) WHERE status = 'active';

-- One row per subscription and event tried: the attempts, the last answer, when delivered.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    position bigint NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    attempts integer NOT NULL,
    last_status integer,
    last_error text,
    last_attempt_at timestamptz NOT NULL,
    delivered_at timestamptz,
    UNIQUE (subscription_id, position)
);
