-- Every detached part of the table, whatever its partition: a detached
-- partition is invisible to queries and untouched by mutations, so rows of
-- the user may be there although no count finds them.
SELECT
    {host_number} AS replica,
    name,
    toString(ifNull(partition_id, '')) AS partition_id
FROM {source}
WHERE database = {database}
  AND table = {table}
