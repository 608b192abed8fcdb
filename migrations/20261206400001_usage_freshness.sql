-- Sync freshness on the fleet overview (`GET /fleet/summary`: `oldest_usage_report_at`,
-- `sims_without_usage_report`): each SIM row carries the observation time of the newest usage
-- report applied to it (the projectors keep the greatest), so the oldest of them across the
-- fleet is the first entry of an index instead of a pass over `sim_usage`, whatever the fleet's
-- size. Terminated SIMs report nothing any more and are left out of the index.

ALTER TABLE sims ADD COLUMN usage_reported_at timestamptz;

UPDATE sims SET usage_reported_at = u.last
FROM (SELECT iccid, max(observed_at) AS last FROM sim_usage GROUP BY iccid) u
WHERE u.iccid = sims.iccid;

CREATE INDEX sims_usage_reported_at ON sims (usage_reported_at) WHERE status <> 'terminated';
