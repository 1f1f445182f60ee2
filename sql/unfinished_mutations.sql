-- Unfinished mutations of one table, per host ({host_number}): a count, never
-- the commands (a batch's statement runs to megabytes).
SELECT {host_number} AS replica, toUInt64(count()) AS n FROM {source} WHERE database = {database} AND table = {table} AND is_done = 0 GROUP BY replica
