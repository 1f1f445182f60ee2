-- `map --probe`: how many rows of one table were read (capped by
-- max_rows_to_read, read_overflow_mode = 'break') and, per string column,
-- how many of them hold one of the sampled ids. {hits} is one
-- `countIf(ifNull(toString(column), '') IN (ids))` per column.
SELECT
    count() AS scanned,
    [{hits}] AS hits
FROM {table}
