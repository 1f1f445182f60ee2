-- The tables of one database as `chforget map` reads them. The columns
-- this server lacks (18.16 has no `uuid`; older servers may lack the
-- others) are given as empty values: each placeholder is the column's name
-- where system.tables has it, else an empty literal of its type.
SELECT
    name,
    engine,
    {engine_full} AS engine_full,
    {create_table_query} AS create_query,
    {dependencies_database} AS dependents_database,
    {dependencies_table} AS dependents_table,
    {uuid} AS uuid
FROM system.tables
WHERE database = {database}
ORDER BY name
