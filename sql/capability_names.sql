-- The names that must exist for a capability, each answered as a tag: a
-- format (typed row checks) and the table function that reads every host
-- of a reach in one query. (The tag is selected from a subquery so that
-- its alias cannot shadow the column the WHERE reads.)
SELECT 'typed_rows' AS name
FROM (SELECT name AS found FROM system.formats)
WHERE found = 'RowBinaryWithNamesAndTypes'
UNION ALL
SELECT 'all_hosts_function' AS name
FROM (SELECT name AS found FROM system.table_functions)
WHERE found = 'clusterAllReplicas'
