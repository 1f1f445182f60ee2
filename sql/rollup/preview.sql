-- Dry run: the rollup rows one chunk of the scope matches now, per partition.
SELECT toUInt32(toYYYYMM(`day`)) AS yyyymm, toUInt64(count()) AS n
FROM {table}
WHERE `project_id` IN {projects} AND {key} IN {chunk}
GROUP BY yyyymm
