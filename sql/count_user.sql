-- The rows a user target matches now, per user id, with exactly the
-- predicate of its DELETE statement ({predicate}): the before and after
-- counts of every user of a request in one query. {replica} numbers the
-- replica when every replica of a cluster is counted ({events} is then
-- clusterAllReplicas() or remote()).
SELECT {replica} AS replica, toString(assumeNotNull({user_id})) AS id, toUInt64(count()) AS n
FROM {events}
WHERE {predicate}
GROUP BY replica, id
