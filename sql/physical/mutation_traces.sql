-- The request's mutations of its tables ({tables}: the events table and
-- every mapped one) in system.mutations ({source}), per host
-- ({host_number}): their text quotes the request's ids.
SELECT {host_number} AS replica, toUInt64(count()) AS n FROM {source} WHERE ({tables}) AND position(command, {request}) > 0
