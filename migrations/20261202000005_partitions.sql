-- Partitioned projectors: a projector (`read-models`) may apply the log in N partitions, each
-- the events of the SIMs whose ICCID hashes to it (quota and SMS events follow their SIM),
-- each with a checkpoint row of its own (`read-models-p<k>`), in parallel.

-- The partition of a SIM among `partitions`: Fibonacci hashing of the ICCID's last 18 digits
-- (the top 32 bits of x * 2^64/phi mod 2^64), mod `partitions`. `projectors::partition_of`
-- is the same function in Rust (a test keeps them equal). Stable: changing it re-partitions
-- every SIM.
CREATE FUNCTION sim_partition(iccid text, partitions integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN partitions <= 1 THEN 0 ELSE
        mod(div(mod(coalesce(nullif(right(regexp_replace(iccid, '[^0-9]', '', 'g'), 18), ''), '0')::numeric
                    * 11400714819323198485, 18446744073709551616), 4294967296), partitions)::integer
    END
$$;

-- How many partitions each projector runs in (no row: one, whose checkpoint row is named as
-- the projector). Written by the projectors at start; read by the query API, whose
-- consistency tokens wait for every partition of the layout.
CREATE TABLE projection_layouts (
    projector   text        PRIMARY KEY,
    partitions  integer     NOT NULL CHECK (partitions >= 1),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The checkpoint rows of a projector's current layout.
CREATE FUNCTION projection_partition_names(projector text) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN n <= 1 THEN projector ELSE projector || '-p' || k END
    FROM (SELECT coalesce((SELECT partitions FROM projection_layouts l WHERE l.projector = $1), 1) AS n) layout,
         generate_series(0, greatest(n, 1) - 1) AS k
$$;

-- Replicas of the projectors process alive (a heartbeat each second): each holds about its
-- share of the partitions (ceil(partitions / replicas alive)).
CREATE TABLE projector_replicas (
    projector   text        NOT NULL,
    replica     uuid        NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, replica)
);
