-- What can hold a mutation back, on its table: merges running now and
-- mutations queued before it that are not done (a table's mutations run one
-- after another).
SELECT
    toUInt64(ifNull((SELECT count() FROM system.merges WHERE database = {database} AND table = {table}), 0)) AS merges_running,
    toUInt64(count()) AS queued_before
FROM system.mutations
WHERE database = {database}
  AND table = {table}
  AND is_done = 0
  AND mutation_id != {mutation_id}
  AND toUInt32(create_time) <= {create_time}
