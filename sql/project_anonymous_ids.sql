-- Every anonymous id of one project that still has rows, as hex, with its
-- anonymous events (NULL user_id) and how many user_ids used it. A forget
-- hashes these to find the anonymous ids an earlier request of the same user
-- stitched, whose journal keeps them only as keyed hashes once finished (the
-- link to the user went with the user's rows).
SELECT
    hex({anonymous_id}) AS anonymous_id,
    toUInt64(countIf(isNull({user_id}))) AS anonymous_events,
    toUInt64(uniqExactIf(assumeNotNull({user_id}), isNotNull({user_id}))) AS users
FROM {events}
WHERE {project_id} IN {projects}
  AND {anonymous_id} != ''
GROUP BY {anonymous_id}
