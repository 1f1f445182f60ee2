-- The rows a user target matches now, per user id, with exactly the
-- predicate of its DELETE statement ({predicate}): the before and after
-- counts of every user of a request in one query.
SELECT toString(assumeNotNull({user_id})) AS id, toUInt64(count()) AS n
FROM {events}
WHERE {predicate}
GROUP BY id
