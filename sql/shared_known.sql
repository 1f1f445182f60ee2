-- Of the anonymous ids known to be a request's users' from elsewhere (kept
-- when their rows were hidden: no row links them to the users any more),
-- those seen now with a user_id of somebody else: a device shared since,
-- whose rows on a table without a user-id column are not the users' alone
-- (they go only with --include-shared). Anonymous ids come back as hex,
-- under a name of their own: an alias named as the column would stand for
-- it in WHERE.
SELECT DISTINCT hex(toString({anonymous_id})) AS anonymous_hex
FROM {events}
WHERE {project_id} IN {projects}
  AND {anonymous_id} IN {ids}
  AND isNotNull({user_id})
  AND {user_id} NOT IN {users}
