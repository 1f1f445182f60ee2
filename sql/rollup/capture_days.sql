-- The days the rows a forget targets fall on, read before the deletion
-- (afterwards they cannot be found). {predicate} is the OR of the plan's
-- target predicates, batched under max_query_size.
SELECT DISTINCT toString(toDate({timestamp})) AS day
FROM {events}
WHERE {predicate}
ORDER BY day
