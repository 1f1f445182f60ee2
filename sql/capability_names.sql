-- The names that must exist for a capability, each answered as a tag: a
-- format (typed row checks), the table function that reads every host
-- of a reach in one query, and the columns of system.tables that tell a
-- table's lineage (`tables.<column>`; 18.16 lacks most). (The tag is selected from a subquery so that
-- its alias cannot shadow the column the WHERE reads.)
SELECT 'typed_rows' AS name
FROM (SELECT name AS found FROM system.formats)
WHERE found = 'RowBinaryWithNamesAndTypes'
UNION ALL
SELECT 'all_hosts_function' AS name
FROM (SELECT name AS found FROM system.table_functions)
WHERE found = 'clusterAllReplicas'
UNION ALL
SELECT concat('tables.', found) AS name
FROM (SELECT name AS found FROM system.columns WHERE database = 'system' AND table = 'tables')
WHERE found IN ('engine_full', 'create_table_query', 'dependencies_database', 'dependencies_table', 'uuid')
