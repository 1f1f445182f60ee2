-- Mutations of a table created since a time that are not a request's own
-- (its id is in each of its statements' markers).
SELECT mutation_id
FROM system.mutations
WHERE database = {database}
    AND table = {table}
    AND create_time >= toDateTime({since})
    AND position(command, {request_id}) = 0
ORDER BY mutation_id
