-- The rows of a table now: its active parts' rows (metadata only), and the
-- server's clock.
SELECT
    toUInt64(sum(rows)) AS rows,
    toUInt64(toUnixTimestamp(now())) AS at_unix
FROM system.parts
WHERE database = {database} AND table = {table} AND active
