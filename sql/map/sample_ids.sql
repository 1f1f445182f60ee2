-- Up to {limit} distinct non-empty ids of one column, for `map --probe`,
-- and how many rows were read to find them (the query runs with
-- max_rows_to_read and read_overflow_mode = 'break', so it stops early).
-- Each id comes back in hex: stored ids are any bytes, not always UTF-8.
SELECT
    count() AS scanned,
    arrayMap(id -> hex(id), arraySlice(groupUniqArrayIf(ifNull(toString({column}), ''), ifNull(toString({column}), '') != ''), 1, {limit})) AS ids
FROM {table}
