-- Rows of a query log ({source}) that quote the request ({condition}), per
-- host ({host_number}).
SELECT {host_number} AS replica, toUInt64(count()) AS n FROM {source} WHERE {condition}
