-- With TimescaleDB: every column of sim_usage's primary key (iccid, observed_at, position) in
-- the compression's segment-by or order-by, as TimescaleDB asks of unique indexes on
-- compressed hypertables (otherwise it warns, and uniqueness on compressed chunks cannot be
-- checked cheaply). Without TimescaleDB this does nothing. A database whose chunks are
-- already compressed keeps its settings (TimescaleDB refuses to change them then).
DO $compression$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        BEGIN
            EXECUTE 'ALTER TABLE sim_usage SET (timescaledb.compress, timescaledb.compress_segmentby = ''iccid'', '
                 || 'timescaledb.compress_orderby = ''observed_at DESC, position DESC'')';
        EXCEPTION WHEN others THEN
            RAISE NOTICE 'sim_usage compression settings kept: %', SQLERRM;
        END;
    END IF;
END
$compression$;
