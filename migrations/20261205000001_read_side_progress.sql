-- The read side's progress, as the query API asks for it. The projectors own the bookkeeping
-- tables (`projection_checkpoints`, `projection_layouts`, `usage_rollup_refreshes`); these
-- functions, with `projection_partition_names`, are the interface other components use
-- instead of reading the tables themselves.

-- Whether the read models hold every event up to the cursor (transaction_id, position):
-- every partition of the projector's recorded layout has passed it, and no day of the usage
-- rows of those events waits for a continuous-aggregate refresh (TimescaleDB; always true on
-- plain Postgres, where the table stays empty). A consistency token waits for this.
CREATE FUNCTION projection_reached(projector text, transaction_id xid8, "position" bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT count(*) FILTER (WHERE (c.transaction_id, c.position) >= ($2, $3))
             = (SELECT count(*) FROM projection_partition_names($1))
       AND NOT EXISTS (SELECT 1 FROM usage_rollup_refreshes r
                       WHERE (r.first_transaction, r.first_position) <= ($2, $3))
    FROM projection_partition_names($1) AS p(name)
    LEFT JOIN projection_checkpoints c ON c.projector = p.name
$$;

-- The highest position any projector's checkpoint reached (0 before the first event): the
-- `as_of_position` of the fleet summary.
CREATE FUNCTION projection_position() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(position), 0)::bigint FROM projection_checkpoints
$$;
