-- The sync connector's memory of the provider, its operator-request dispatches and the
-- sync jobs the command API queues for it.

-- What the connector last saw of each SIM at 1NCE. A difference between this and a new
-- answer is what becomes a command; an answer equal to it issues nothing.
CREATE TABLE sync_sims (
    iccid              text        PRIMARY KEY,
    -- The connector shard that owns the SIM ("index/count"); see docs/sync-connector.md.
    shard              text        NOT NULL DEFAULT '0/1',
    -- The SIM-list entry as last seen (status, IMEI, lock, IP, quota left and status…).
    list_entry         jsonb       NOT NULL,
    -- The per-SIM answers as last turned into commands (connectivity, quotas, usage days,
    -- the highest MO SMS id); absent until the first per-SIM refresh.
    connectivity       jsonb,
    data_quota         jsonb,
    sms_quota          jsonb,
    usage_days         jsonb       NOT NULL DEFAULT '{}',
    last_mo_sms_id     bigint      NOT NULL DEFAULT 0,
    -- Set when the list entry changed: the SIM gets per-SIM calls before the round-robin.
    detail_due         boolean     NOT NULL DEFAULT true,
    detail_synced_at   timestamptz,
    list_seen_at       timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_sims_round_robin ON sync_sims (shard, detail_synced_at NULLS FIRST, iccid);
CREATE INDEX sync_sims_detail_due ON sync_sims (shard, iccid) WHERE detail_due;

-- One row per operator request carried out at 1NCE. The row is written (state
-- 'dispatching') before the provider call, so that after a crash the connector knows a call
-- may have been made and reconciles with the provider instead of calling again.
CREATE TABLE sync_dispatches (
    request_id     uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('activation', 'suspension', 'topup', 'sms')),
    aggregate_id   text        NOT NULL,
    iccid          text        NOT NULL,
    state          text        NOT NULL CHECK (state IN ('pending', 'dispatching', 'completed', 'failed', 'unknown')),
    -- The instance that set 'dispatching'; while it holds its advisory lock it is alive.
    owner          uuid,
    -- What the provider showed before the call (a quota), to recognise the call's effect.
    before_call    jsonb,
    -- The provider's reference for the result (an SMS id, an order location).
    provider_ref   text,
    outcome        text,
    attempts       integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at  timestamptz,
    finished_at    timestamptz
);
CREATE INDEX sync_dispatches_open ON sync_dispatches (created_at) WHERE state IN ('pending', 'dispatching');

-- Sync jobs asked for on the command API (`POST /sims/{iccid}/sync`, `POST /sims/sync-all`).
-- The table is the queue: every connector shard claims its own run of a job (SKIP LOCKED is
-- not needed: the run's primary key is the claim), and a NATS message only wakes it early.
CREATE TABLE sync_jobs (
    job_id        uuid        PRIMARY KEY,
    scope         text        NOT NULL,               -- 'all' or an ICCID
    requested_by  text        NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_jobs_requested_at ON sync_jobs (requested_at);

-- One run per job and shard that owns part of its scope ("index/count"). A job is done when
-- every shard ran it (an ICCID job: the one shard that owns the ICCID).
CREATE TABLE sync_job_runs (
    job_id           uuid        NOT NULL REFERENCES sync_jobs (job_id) ON DELETE CASCADE,
    shard            text        NOT NULL,
    shard_count      integer     NOT NULL,
    status           text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    sims_total       integer     NOT NULL DEFAULT 0,
    sims_done        integer     NOT NULL DEFAULT 0,
    events_recorded  integer     NOT NULL DEFAULT 0,
    error            text,
    PRIMARY KEY (job_id, shard)
);
