-- The 1NCE Data Streamer receiver's inbox (owner: sync-connector). A batch is answered 200
-- only once every well-formed record of it is here (one transaction); the applier then turns
-- the records into commands. Record ids are unique within a stream, so (stream, record_id)
-- is the key that makes a retransmission a no-op.
CREATE TABLE streamer_records (
    stream       text        NOT NULL CHECK (stream IN ('usage', 'events')),
    record_id    bigint      NOT NULL,
    -- The claim order of the applier.
    seq          bigint      GENERATED ALWAYS AS IDENTITY,
    -- data, sms, usage_other, connectivity, status, quota, event_other.
    kind         text        NOT NULL,
    iccid        text,
    -- FNV-1a of the ICCID (as `config::shard_of` computes it), so each connector shard claims
    -- its own SIMs' records: shard_hash % SYNC_SHARD_COUNT = SYNC_SHARD_INDEX.
    shard_hash   numeric(20, 0),
    occurred_at  timestamptz NOT NULL,
    -- The normalised record (`streamer::record::Record`).
    record       jsonb       NOT NULL,
    -- received: waits for the applier; pending: its SIM is not registered yet; applied,
    -- skipped (nothing to do), refused (the domain said no): settled, with the reason.
    state        text        NOT NULL DEFAULT 'received'
                 CHECK (state IN ('received', 'pending', 'applied', 'skipped', 'refused')),
    reason       text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz,
    PRIMARY KEY (stream, record_id)
);
CREATE INDEX streamer_records_waiting ON streamer_records (seq) WHERE state = 'received';
CREATE INDEX streamer_records_pending ON streamer_records (iccid) WHERE state = 'pending';
-- A connectivity or status record older than one already applied to the SIM is superseded.
CREATE INDEX streamer_records_applied ON streamer_records (iccid, kind, occurred_at)
    WHERE state = 'applied';
-- Settled records are kept for STREAMER_RETENTION_DAYS (retransmissions come within hours),
-- then deleted.
CREATE INDEX streamer_records_settled ON streamer_records (settled_at) WHERE settled_at IS NOT NULL;

-- Records refused at the door (malformed), kept for operators; reported in the 200 answer.
CREATE TABLE streamer_rejects (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id    bigint,
    reason       text        NOT NULL,
    -- The record as sent, cut to 8 kB.
    body         text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX streamer_rejects_record ON streamer_rejects (record_id) WHERE record_id IS NOT NULL;
CREATE INDEX streamer_rejects_received ON streamer_rejects (received_at);
