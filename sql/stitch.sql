-- The anonymous ids the users of a request were seen with in one project,
-- read before anything is deleted: the link disappears with the users' rows.
-- One query for every user of the request: per (user, anonymous id) the
-- user's events with it; per anonymous id its anonymous events (NULL
-- user_id) and how many user_ids used it in all (a shared device when more
-- than one). Anonymous ids come back as hex: a stored id may hold any bytes.
-- Empty anonymous ids are never stitched: they tie no row to anybody.
-- IN rather than = on the Nullable user_id: see sql/forget/user.sql. On a
-- cluster {events} reads every shard and {global} makes the IN subquery run
-- once, here, instead of on each shard (a double-distributed IN).
SELECT
    uid AS user_id,
    hex(aid) AS anonymous_id,
    user_events,
    anonymous_events,
    users
FROM
(
    SELECT
        toString(assumeNotNull({user_id})) AS uid,
        toString({anonymous_id}) AS aid,
        toUInt64(count()) AS user_events
    FROM {events}
    WHERE {project_id} IN {projects}
      AND {user_id} IN {users}
      AND {anonymous_id} != ''
    GROUP BY uid, aid
) AS pairs
ANY LEFT JOIN
(
    SELECT
        toString({anonymous_id}) AS aid,
        toUInt64(countIf(isNull({user_id}))) AS anonymous_events,
        toUInt64(uniqExactIf(assumeNotNull({user_id}), isNotNull({user_id}))) AS users
    FROM {events}
    WHERE {project_id} IN {projects}
      AND {anonymous_id} {global}IN (
          SELECT {anonymous_id}
          FROM {events}
          WHERE {project_id} IN {projects}
            AND {user_id} IN {users}
            AND {anonymous_id} != '')
    GROUP BY aid
) AS ids USING aid
ORDER BY uid, aid
