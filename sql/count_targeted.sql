-- The rows a target matches now, with exactly the predicate of its DELETE
-- statement ({predicate}): every user and every stitched anonymous id of a
-- request in one scan, grouped by kind of row ({anonymous}: 0 for a user's
-- rows, 1 for anonymous rows, or isNull(user_id) when one statement covers
-- both), by id (a user id, or an anonymous id as hex: a stored id may hold
-- bytes that are not UTF-8; never NULL: the predicates match no NULL id,
-- and a Nullable answer would not decode) and, before anything is sent, by partition
-- ({partition}: where the mutation will leave old parts behind; '' when not
-- asked). {host_number} numbers the host when every replica of a cluster is
-- counted ({events} is then clusterAllReplicas() or remote()).
SELECT
    {host_number} AS replica,
    toUInt8({anonymous}) AS anonymous,
    if(anonymous = 1, hex(assumeNotNull({anonymous_id})), toString(assumeNotNull({user_id}))) AS id,
    {partition} AS partition,
    toUInt64(count()) AS n
FROM {events}
WHERE {predicate}
GROUP BY replica, anonymous, id, partition
