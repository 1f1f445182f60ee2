-- The rows of a table now: its active parts' rows (metadata only), the
-- server's clock, and the mutations of the table not done yet (they may
-- still remove rows).
SELECT
    toUInt64(ifNull((
        SELECT toUInt64(sum(rows))
        FROM system.parts
        WHERE database = {database} AND table = {table} AND active
    ), 0)) AS rows,
    toUInt64(toUnixTimestamp(now())) AS at_unix,
    (
        SELECT groupArray(mutation_id)
        FROM system.mutations
        WHERE database = {database} AND table = {table} AND is_done = 0
    ) AS pending
