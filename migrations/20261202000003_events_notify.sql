-- The relay wakes on commit instead of polling: every transaction that stores events sends one
-- notification on `sim_events` when it commits (notifications with the same payload in one
-- transaction are folded into one, and none is sent for a transaction that rolls back). The
-- relay keeps a slow poll as a fallback for notifications lost while its listening connection
-- was being made again.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sim_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
