-- The request's mutations of its events table in system.mutations ({source}),
-- per host ({host_number}): their text quotes the request's ids.
SELECT {host_number} AS replica, toUInt64(count()) AS n FROM {source} WHERE database = {database} AND table = {table} AND position(command, {request}) > 0
