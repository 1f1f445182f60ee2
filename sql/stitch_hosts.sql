-- On a cluster: the anonymous ids of the users as every replica holds them
-- (a replica behind on replication can hide an id from the one replica per
-- shard that sql/stitch.sql reads). {host} numbers the host. Aliases
-- differ from the columns: 18.16 would take them for the columns.
SELECT
    {host} AS host,
    toString(assumeNotNull({user_id})) AS uid,
    hex({anonymous_id}) AS aid,
    toUInt64(count()) AS n
FROM {events}
WHERE {project_id} IN {projects}
  AND {user_id} IN {users}
  AND {anonymous_id} != ''
GROUP BY host, uid, aid
