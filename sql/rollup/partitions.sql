-- The partitions a rollup touches: those of the rows in scope now and those
-- of the recomputed rows (a session moves when its first event changes
-- month). Rollup tables are partitioned by toYYYYMM(day).
SELECT DISTINCT toUInt32(toYYYYMM(`day`)) AS yyyymm
FROM
(
    SELECT `day` FROM {table} WHERE {scope}
    UNION ALL
    SELECT `day` FROM {recomputed}
)
ORDER BY yyyymm
