-- The sessions the rows a forget targets belong to, read before the deletion.
-- {predicate} is the OR of the plan's target predicates. Ids come back as
-- hex: a stored session id may hold any bytes.
SELECT DISTINCT hex({session_id}) AS session_id
FROM {events}
WHERE {predicate}
ORDER BY session_id
