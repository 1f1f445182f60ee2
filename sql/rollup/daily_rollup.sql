-- daily_rollup recomputed from the raw events, reference semantics: one row
-- per (project, day, event) with count() AS events and
-- uniqExact(anonymous_id) AS visitors, for the days in scope only.
-- Placeholders: {events}, the event columns of the profile ({project_id},
-- {user_id}, {anonymous_id}, {session_id}, {event}, {timestamp}), and
-- {projects} and {days}: right-hand sides of IN (a literal list or a
-- subquery). The output columns are named like the daily_rollup columns;
-- chforget inserts them by name. A profile may point `[rollup] daily_rollup`
-- at another file with the same placeholders.
SELECT
    toString({project_id}) AS project_id,
    toDate({timestamp}) AS day,
    toString({event}) AS event,
    toUInt64(count()) AS events,
    toUInt64(uniqExact({anonymous_id})) AS visitors
FROM {events}
WHERE {project_id} IN {projects}
  AND toDate({timestamp}) IN {days}
GROUP BY project_id, day, event
