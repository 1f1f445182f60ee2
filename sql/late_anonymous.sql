-- Anonymous rows (NULL user_id) of one project since a time, per anonymous
-- id: `chforget verify` hashes these ids to find the ones of a finished
-- request, whose journal keeps only keyed hashes. Ids come back as hex: a
-- stored id may hold any bytes.
SELECT
    hex({anonymous_id}) AS anonymous_id,
    toUInt64(count()) AS rows
FROM {events}
WHERE {project_id} IN {projects}
  AND isNull({user_id})
  AND {timestamp} >= toDateTime({since})
GROUP BY {anonymous_id}
