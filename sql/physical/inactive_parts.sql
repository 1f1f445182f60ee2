-- Inactive parts of the partitions a request touched ({in_partitions}: all
-- of them when they are not known) that predate its last
-- statement ({issued}, unix seconds): the parts its mutations replaced, still
-- on disk until the server removes them (old_parts_lifetime after they went
-- out of use: remove_time, or modification_time where a server leaves
-- remove_time empty).
SELECT
    {host_number} AS replica,
    toUInt64(count()) AS parts,
    toUInt64(sum(bytes_on_disk)) AS bytes,
    toUInt32(max(if(toUInt32(remove_time) = 0, toUInt32(modification_time), toUInt32(remove_time)))) AS outdated_at
FROM {source}
WHERE database = {database}
  AND table = {table}
  AND active = 0
  AND {in_partitions}
  AND toUInt32(modification_time) <= {issued}
GROUP BY replica
