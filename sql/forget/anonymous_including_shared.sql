-- As anonymous.sql, plus every row of the shared anonymous ids among them,
-- other users' rows on those devices included (--include-shared: the
-- operator decided to wipe the shared devices too).
{project_id} IN {projects}
AND {anonymous_id} IN {anonymous_ids}
AND (isNull({user_id}) OR {anonymous_id} IN {shared_anonymous_ids})
