-- Bulk jobs (`POST /bulk-jobs`, `POST /sims/import` on the command API): one row per job and
-- one per SIM it acts on. Owned by `crates/bulk-jobs`; nothing else reads or writes them.
-- The items are the queue: workers of the command API claim them (FOR UPDATE SKIP LOCKED)
-- under a lease, so a crashed worker's items are claimed again once the lease ran out.

CREATE TABLE bulk_jobs (
    id                 uuid        PRIMARY KEY,
    action             text        NOT NULL,
    -- The action's parameters (a label, tags, an SMS text, a top-up's quota), as validated.
    params             jsonb       NOT NULL DEFAULT '{}',
    -- How the items were chosen: {"kind": "iccids" | "csv" | "filter" | "import", …}; a
    -- filter is kept as given, its ICCIDs frozen into the items at submission.
    target             jsonb       NOT NULL,
    dry_run            boolean     NOT NULL DEFAULT false,
    status             text        NOT NULL DEFAULT 'queued'
                                   CHECK (status IN ('queued', 'running', 'done', 'cancelled')),
    created_by         text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    cancelled_at       timestamptz,
    -- Counters, moved in the same transaction as the items' outcomes, so that reading a job's
    -- progress never scans its (up to 100,000) items.
    total              integer     NOT NULL,
    done               integer     NOT NULL DEFAULT 0,
    applied            integer     NOT NULL DEFAULT 0,
    would_apply        integer     NOT NULL DEFAULT 0,
    refused            integer     NOT NULL DEFAULT 0,
    failed             integer     NOT NULL DEFAULT 0,
    cancelled          integer     NOT NULL DEFAULT 0,
    provider_pending   integer     NOT NULL DEFAULT 0,
    provider_completed integer     NOT NULL DEFAULT 0,
    provider_failed    integer     NOT NULL DEFAULT 0,
    provider_unknown   integer     NOT NULL DEFAULT 0,
    -- `Idempotency-Key` of the submission (scope: the principal) and a hash of the request.
    idempotency_scope  text,
    idempotency_key    text,
    request_hash       text,
    UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX bulk_jobs_newest ON bulk_jobs (created_at DESC, id DESC);
-- Jobs with items left to settle (a cancelled job may still have started ones).
CREATE INDEX bulk_jobs_open ON bulk_jobs (created_at) WHERE finished_at IS NULL;

CREATE TABLE bulk_job_items (
    job_id            uuid        NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    -- The item's place in the target (from 1).
    seq               integer     NOT NULL,
    iccid             text        NOT NULL,
    -- What this SIM alone needs (an imported row: IMSI, MSISDN, label, tags).
    input             jsonb,
    -- NULL until the item ran; 'cancelled' when the job was cancelled before it started.
    outcome           text        CHECK (outcome IN ('applied', 'would_apply', 'refused', 'failed', 'cancelled')),
    -- The domain's error code of a refusal; for 'failed', what went wrong.
    code              text,
    message           text,
    attempts          integer     NOT NULL DEFAULT 0,
    lease_owner       uuid,
    lease_until       timestamptz,
    -- Set when a worker starts the command: a cancel no longer stops this item.
    started_at        timestamptz,
    finished_at       timestamptz,
    -- What the command wrote (for the provider outcome and the consistency token).
    aggregate_type    text,
    aggregate_id      text,
    request_id        uuid,
    version           bigint,
    position          bigint,
    -- For provider actions: 'pending' until the connector reports, then its final outcome.
    provider_outcome  text        CHECK (provider_outcome IN ('pending', 'completed', 'failed', 'unknown')),
    provider_reason   text,
    provider_checked_at timestamptz,
    PRIMARY KEY (job_id, seq),
    UNIQUE (job_id, iccid)
);
-- What is left to do, in order.
CREATE INDEX bulk_job_items_todo ON bulk_job_items (job_id, seq) WHERE outcome IS NULL;
-- Provider requests whose outcome is not known yet.
CREATE INDEX bulk_job_items_provider_pending ON bulk_job_items (provider_checked_at NULLS FIRST)
    WHERE provider_outcome IN ('pending', 'unknown');
