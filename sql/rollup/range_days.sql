-- Days of a project in a date range (`chforget rollup --days/--since`): every
-- day that has events or daily_rollup rows, so rows of days whose events are
-- all gone are found too. The range conditions are rendered by chforget.
SELECT DISTINCT day_text AS day
FROM
(
    SELECT toString(toDate({timestamp})) AS day_text
    FROM {events}
    WHERE {project_id} IN {projects} AND {event_range}
    UNION ALL
    SELECT toString(`day`) AS day_text
    FROM {rollup_table}
    WHERE `project_id` IN {projects} AND {rollup_range}
)
ORDER BY day_text
