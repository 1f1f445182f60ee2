-- On a cluster, for anonymous ids found on some replicas only: their
-- anonymous events and how many user_ids used them, per replica.
SELECT
    {host} AS host,
    hex({anonymous_id}) AS aid,
    toUInt64(countIf(isNull({user_id}))) AS anonymous_events,
    toUInt64(uniqExactIf(assumeNotNull({user_id}), isNotNull({user_id}))) AS users
FROM {events}
WHERE {project_id} IN {projects}
  AND {anonymous_id} IN {anonymous_ids}
GROUP BY host, aid
