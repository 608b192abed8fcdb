-- Webhooks: a subscription may deliver only the events of SIMs that carried a tag when the
-- event happened (NULL: every SIM and the events about no SIM).
ALTER TABLE webhook_subscriptions ADD COLUMN tag text;
