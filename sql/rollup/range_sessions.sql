-- Sessions of a project in a date range: sessions with an event on a day of
-- the range, and sessions rows whose day is in the range (so sessions whose
-- events are all gone are found too). Each is recomputed whole.
SELECT DISTINCT hex(session_text) AS session_id
FROM
(
    SELECT toString({session_id}) AS session_text
    FROM {events}
    WHERE {project_id} IN {projects} AND {event_range}
    UNION ALL
    SELECT toString(`session_id`) AS session_text
    FROM {rollup_table}
    WHERE `project_id` IN {projects} AND {rollup_range}
)
ORDER BY session_id
