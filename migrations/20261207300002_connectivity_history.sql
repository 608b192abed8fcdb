-- A SIM's connectivity history (owner: projectors, module readmodel::connectivity_history):
-- one row per `ConnectivityChanged` event, whichever source showed it (polling `…/status`, the
-- Data Streamer, or the provider's event log polled when the streamer is off). Read by
-- `GET /api/v1/sims/{iccid}/connectivity`; rebuilt with the `sims` model.
CREATE TABLE sim_connectivity_history (
    iccid        text        NOT NULL,
    -- The event's global position: the order and the paging key.
    position     bigint      NOT NULL,
    observed_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL,
    network      text,
    country      text,
    rat          text,
    ip_address   text,
    actor        text,
    PRIMARY KEY (iccid, position)
);

-- The SIMs' changes so far, from the event log (the projectors add the ones after).
INSERT INTO sim_connectivity_history
SELECT e.iccid, e.position,
       COALESCE((e.payload->>'observed_at')::timestamptz, e.recorded_at), e.recorded_at,
       e.payload->>'network', e.payload->>'country', e.payload->>'rat', e.payload->>'ip_address',
       e.metadata->>'actor'
FROM events e WHERE e.aggregate_type = 'sim' AND e.event_type = 'ConnectivityChanged'
ON CONFLICT DO NOTHING;
