-- Mutations as chforget reads them from system.mutations. Columns that old
-- servers lack ({is_killed}, {latest_fail_reason}, {latest_failed_part}) are
-- filled with neutral constants there; every column is cast so the row layout
-- is the same on every version. Texts that may quote deleted ids (which can
-- hold bytes that are not UTF-8) come as hex, under other names than the
-- columns (an alias would shadow the column in WHERE). {host_number} numbers
-- the replica that answered when every replica of a cluster is read ({source} is
-- then clusterAllReplicas() or remote() over system.mutations).
SELECT
    {host_number} AS replica,
    database,
    table,
    mutation_id,
    hex(command) AS command_hex,
    toUInt32(create_time) AS create_time,
    toInt64(parts_to_do) AS parts_to_do,
    toUInt8(is_done) AS is_done,
    {is_killed} AS is_killed,
    hex({latest_fail_reason}) AS latest_fail_reason_hex,
    {latest_failed_part} AS latest_failed_part
FROM {source}
WHERE {filter}
ORDER BY database, table, create_time, mutation_id
