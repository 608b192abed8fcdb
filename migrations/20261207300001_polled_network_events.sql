-- Network events read from the Management API (`GET /v1/sims/{iccid}/events`) when the Data
-- Streamer is not configured (owner: sync-connector). They go through the streamer's inbox and
-- applier as stream `api_events`: the API's events carry no id of the streamer's record id
-- space (usually no id at all), so they are keyed apart from streamed `events`.
ALTER TABLE streamer_records DROP CONSTRAINT streamer_records_stream_check;
ALTER TABLE streamer_records ADD CONSTRAINT streamer_records_stream_check
    CHECK (stream IN ('usage', 'events', 'api_events'));

-- The newest event timestamp of the SIM already stored in the inbox (or, at the SIM's first
-- refresh, seen): the next refresh reads only the events after it.
ALTER TABLE sync_sims ADD COLUMN events_cursor timestamptz;
