-- The global log's horizon, held back only by transactions that write events.
--
-- Readers of the log (the relay, the projectors' catch-up, the history route) read only events
-- of transactions older than every transaction still in flight, so that none can commit later
-- below what was read. With `pg_snapshot_xmin` that is every transaction with an id on the
-- whole cluster: a projector's apply, a TimescaleDB refresh or compression job, a report in
-- another database all held every event behind them (measured in docs/benchmarks.md).
--
-- Event writers are now marked: the transaction's application_name starts with
-- 'event-writer' from before it has a transaction id until it ends (a trigger on `events`
-- marks it before its first insert, and refuses a transaction that wrote something else
-- first). A transaction in flight that is known, from pg_stat_activity, to be running under
-- another name can never write an event, so it no longer holds the horizon. Every other
-- transaction in the snapshot's in-progress list (writers, and any that ended since the
-- snapshot or cannot be seen) still does, so the horizon is never later than it may be:
-- - the snapshot is taken before pg_stat_activity is read (both in one statement);
-- - a writer is marked before it gets an id and its id is cleared (at commit) before the mark
--   goes (at the end of the transaction), so an id is never seen with its writer unmarked,
--   except for ids assigned after the snapshot, which are not in its in-progress list.
-- STABLE: evaluated on the calling statement's snapshot. Call it once per statement, as a
-- scalar subquery: `transaction_id < (SELECT event_log_horizon())`.
CREATE FUNCTION event_log_horizon() RETURNS xid8
LANGUAGE sql STABLE AS $$
    SELECT least(
        pg_snapshot_xmax(pg_current_snapshot()),
        (SELECT min(x) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE NOT EXISTS (
             SELECT 1 FROM pg_stat_activity a
             WHERE a.backend_xid = x::xid
               AND a.application_name IS NOT NULL
               AND a.application_name NOT LIKE 'event-writer%')))
$$;

-- Marks the calling transaction as an event writer (idempotent). It must come before the
-- transaction has an id, or a reader could already have let the horizon pass it.
CREATE FUNCTION mark_event_writer() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('simplatform.event_writer', true) = 'on' THEN
        RETURN;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'a transaction that writes events must do so before it writes anything else'
            USING HINT = 'append the events first, or call mark_event_writer() at the start of the transaction';
    END IF;
    PERFORM set_config('application_name',
        left('event-writer ' || coalesce(current_setting('application_name', true), ''), 63), true);
    PERFORM set_config('simplatform.event_writer', 'on', true);
END;
$$;

CREATE FUNCTION events_mark_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mark_event_writer();
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_mark_writer
    BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_mark_writer();
