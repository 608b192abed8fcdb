-- Disabling a user revokes every live refresh token of theirs (PATCH /users/{id}): find them
-- by user without reading the whole table. Only live tokens are indexed, the ones revoked.
CREATE INDEX refresh_tokens_live_by_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
