-- Connectivity reset, auto top-up and the account's limits carried out at 1NCE are dispatched
-- like the other operator requests.
ALTER TABLE sync_dispatches DROP CONSTRAINT sync_dispatches_kind_check;
ALTER TABLE sync_dispatches ADD CONSTRAINT sync_dispatches_kind_check
    CHECK (kind IN ('activation', 'suspension', 'topup', 'sms', 'sim_update',
                    'connectivity_reset', 'auto_topup', 'limits'));
