-- The query benches' and the dashboard's budget test's `sims` rows (`$1` of them), written
-- directly: the query API only reads the table. Read by `testkit::bench::SIMS_FILL` and by
-- query-service/web/browser-tests/budget.test.mjs.
INSERT INTO sims (iccid, imsi, msisdn, label, tags, status, provider_status, network, country, rat,
                  ip_address, last_seen_at, data_total, data_remaining, data_expiry,
                  registered_at, version, last_position, updated_at)
SELECT '8988303' || lpad(g::text, 12, '0'),
       '90140' || lpad(g::text, 10, '0'),
       '49170' || lpad(g::text, 8, '0'),
       (ARRAY['pump', 'meter', 'tracker', 'gateway', 'sensor'])[(h / 7) % 5 + 1] || ' ' || g,
       ARRAY[(ARRAY['north', 'south', 'east', 'west'])[(h / 11) % 4 + 1], 'fleet-' || ((h / 53) % 20)],
       CASE WHEN h % 100 < 70 THEN 'active' WHEN h % 100 < 85 THEN 'suspended'
            WHEN h % 100 < 97 THEN 'inactive' ELSE 'terminated' END,
       CASE WHEN h % 100 < 70 THEN 'Enabled' ELSE 'Disabled' END,
       'Telekom', 'DE', 'LTE-M', '10.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256),
       now() - make_interval(secs => h % 86400),
       500000000, 500000000 - (h % 500000000), now() + interval '300 days',
       now() - interval '30 days', 5, g, now()
FROM (SELECT g, abs(hashint4(g)::bigint) AS h FROM generate_series(0, $1::int - 1) AS g) numbered
