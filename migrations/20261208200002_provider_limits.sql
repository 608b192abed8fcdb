-- 1NCE's self-set monthly limits as the sync connector last read them: per service (data,
-- smsMT, smsMO) the ids 1NCE offers (`current` false) and the one it has now (`current` true).
-- Replaced whole on each read; the command API's GET /api/v1/limits shows them.
CREATE TABLE provider_limits (
    service      text        NOT NULL,
    limit_id     bigint      NOT NULL,
    value        text,
    unit         text,
    current      boolean     NOT NULL,
    observed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, limit_id, current)
);
