-- Predicate of the rows a user owns in one project.
-- Only IN on the Nullable user_id: before ClickHouse 20.5 (PR 12153) a DELETE
-- predicate that evaluates to NULL deletes the row, so `user_id = 'u'` would
-- wipe every NULL user_id row of every project. IN never yields NULL.
{project_id} IN {projects}
AND {user_id} IN {users}
