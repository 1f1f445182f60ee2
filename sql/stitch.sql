-- The anonymous ids one user was seen with in one project, read before
-- anything is deleted: the link disappears with the user's rows.
-- For each id: the user's events, its anonymous events (NULL user_id) and how
-- many other user_ids used it (a shared device). Empty anonymous ids are never
-- stitched: they tie no row to anybody.
-- IN rather than = on the Nullable user_id: old servers treat a NULL predicate
-- result inconsistently, IN never yields NULL.
SELECT
    toString({anonymous_id}) AS anonymous_id,
    toUInt64(countIf({user_id} IN {users})) AS user_events,
    toUInt64(countIf(isNull({user_id}))) AS anonymous_events,
    toUInt64(uniqExactIf(assumeNotNull({user_id}), isNotNull({user_id}) AND NOT ({user_id} IN {users}))) AS other_users
FROM {events}
WHERE {project_id} IN {projects}
  AND {anonymous_id} IN (
      SELECT {anonymous_id}
      FROM {events}
      WHERE {project_id} IN {projects}
        AND {user_id} IN {users}
        AND {anonymous_id} != '')
GROUP BY {anonymous_id}
ORDER BY {anonymous_id}
