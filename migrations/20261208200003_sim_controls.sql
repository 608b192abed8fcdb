-- A SIM's provider controls as the read model shows them (`domain::SimControls` as JSON):
-- auto top-up as 1NCE confirmed it, and the last auto top-up change and connectivity reset
-- with their outcomes.
ALTER TABLE sims ADD COLUMN controls jsonb NOT NULL DEFAULT '{}'::jsonb;
