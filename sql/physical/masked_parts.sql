-- Active parts of the touched partitions that carry a lightweight-delete mask
-- (`_row_exists`): rows hidden from queries but still on disk.
SELECT {host_number} AS replica, toUInt64(count()) AS parts
FROM {source}
WHERE database = {database}
  AND table = {table}
  AND active = 1
  AND has_lightweight_delete = 1
  AND {in_partitions}
GROUP BY replica
