-- Predicate of the anonymous rows (NULL user_id) of the stitched anonymous
-- ids in one project. Rows of other users on a shared device stay.
{project_id} IN {projects}
AND {anonymous_id} IN {anonymous_ids}
AND isNull({user_id})
