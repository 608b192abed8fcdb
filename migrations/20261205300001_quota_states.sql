-- The quota-state filter of `GET /sims` (`quota_state=ok|warning|exhausted`, `quota=data|sms`)
-- over 100,000 SIMs: each SIM row carries the state of its data quota, of its SMS quota and the
-- worse of the two, as generated columns (Postgres keeps them in step with the quota numbers
-- the projectors write), each indexed with the ICCID, the list's default order.
--
-- The states follow the quota aggregate's alerts (`domain::quota::THRESHOLDS`: a threshold is
-- crossed when used * 100 >= threshold * total): `exhausted` when nothing remains (100 % used),
-- `warning` when at least 80 % is used and something remains, `ok` below 80 %. A quota the
-- provider has not reported yet (null numbers) has no state and matches no filter value.

CREATE FUNCTION quota_state(total bigint, remaining bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN total IS NULL OR remaining IS NULL THEN NULL
        WHEN remaining <= 0 THEN 'exhausted'
        -- used >= 80 % of total, in integers: (total - remaining) * 100 >= 80 * total.
        WHEN remaining::numeric * 5 <= total THEN 'warning'
        ELSE 'ok'
    END
$$;

-- The worse of two states (null: unknown, better than any).
CREATE FUNCTION worse_quota_state(a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a = 'exhausted' OR b = 'exhausted' THEN 'exhausted'
        WHEN a = 'warning' OR b = 'warning' THEN 'warning'
        WHEN a = 'ok' OR b = 'ok' THEN 'ok'
    END
$$;

ALTER TABLE sims
    ADD COLUMN data_quota_state text GENERATED ALWAYS AS (quota_state(data_total, data_remaining)) STORED,
    ADD COLUMN sms_quota_state text GENERATED ALWAYS AS (quota_state(sms_total, sms_remaining)) STORED,
    ADD COLUMN quota_state text GENERATED ALWAYS AS (
        worse_quota_state(quota_state(data_total, data_remaining), quota_state(sms_total, sms_remaining))
    ) STORED;

CREATE INDEX sims_quota_state ON sims (quota_state, iccid);
CREATE INDEX sims_data_quota_state ON sims (data_quota_state, iccid);
CREATE INDEX sims_sms_quota_state ON sims (sms_quota_state, iccid);
