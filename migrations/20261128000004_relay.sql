-- The relay's checkpoint: the last event of the global log that JetStream acknowledged.
--
-- One row per stream. The relay writes it only after the publish acknowledgements of every
-- event up to it, and only on the connection that holds its advisory lock, so a relay that
-- lost its leadership cannot move it. JetStream is checked against it at every start: a
-- stream that holds less than the checkpoint lost acknowledged messages and is refilled.
CREATE TABLE relay_checkpoints (
    stream          text        PRIMARY KEY,
    -- The global log cursor (transaction id, position) of the last acknowledged event.
    transaction_id  xid8        NOT NULL,
    position        bigint      NOT NULL,
    -- The stream sequence JetStream gave that event (informational: a recreated stream
    -- restarts its numbering).
    stream_sequence bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
