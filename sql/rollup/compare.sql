-- How the rollup rows in scope ({table} WHERE {scope}) differ from the
-- recomputed rows ({recomputed}), matched on the key columns: removed (key
-- only before), inserted (key only after), changed (key on both sides, other
-- values) and unchanged. Also the row counts on each side.
SELECT
    toUInt64(countIf(sides = 1)) AS removed,
    toUInt64(countIf(sides = 2)) AS inserted,
    toUInt64(countIf(sides = 3 AND versions > 1)) AS changed,
    toUInt64(countIf(sides = 3 AND versions = 1)) AS unchanged,
    toUInt64(sum(current_rows)) AS rows_current,
    toUInt64(sum(recomputed_rows)) AS rows_recomputed
FROM
(
    SELECT
        groupBitOr(side) AS sides,
        uniqExact(row_hash) AS versions,
        countIf(side = 1) AS current_rows,
        countIf(side = 2) AS recomputed_rows
    FROM
    (
        SELECT {key_columns}, cityHash64({all_columns}) AS row_hash, toUInt8(1) AS side
        FROM {table}
        WHERE {scope}
        UNION ALL
        SELECT {key_columns}, cityHash64({all_columns}) AS row_hash, toUInt8(2) AS side
        FROM {recomputed}
    )
    GROUP BY {key_columns}
)
