-- A disabled SIM carries no traffic (owner: sync-connector). `disabled_seen_at` is when the
-- SIM list first showed the SIM Disabled since it was last seen Enabled (NULL: enabled, or
-- never seen disabled). The usage round skips a disabled SIM once a usage call made after the
-- end of that day has read the day as closed (reconciled), so a fleet's disabled SIMs stop
-- costing a call per round; the safety net still reads them, and enabling one again (seen in
-- the list) puts it back in the round.
ALTER TABLE sync_sims ADD COLUMN disabled_seen_at timestamptz;
