-- sessions recomputed from the raw events, reference semantics: one row per
-- (project, session_id) with toDate(min(ts)) AS day, min(ts) AS started_at,
-- max(ts) AS ended_at, count() AS events and countIf(event = 'pageview') AS
-- pageviews, for the sessions in scope only (all their events, whatever the
-- day). A session without events left yields no row.
-- Placeholders: {events}, the event columns of the profile, and {projects}
-- and {sessions}: right-hand sides of IN. The output columns are named like
-- the sessions columns. A profile may point `[rollup] sessions` at another
-- file with the same placeholders.
SELECT
    toString({project_id}) AS project_id,
    toString({session_id}) AS session_id,
    toDate(min({timestamp})) AS day,
    min({timestamp}) AS started_at,
    max({timestamp}) AS ended_at,
    toUInt64(count()) AS events,
    toUInt64(countIf({event} = 'pageview')) AS pageviews
FROM {events}
WHERE {project_id} IN {projects}
  AND {session_id} IN {sessions}
GROUP BY project_id, session_id
