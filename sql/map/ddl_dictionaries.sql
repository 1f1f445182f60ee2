-- Dictionaries made by CREATE DICTIONARY (not on 18.16), in any database:
-- their statement names what they load from (SOURCE(CLICKHOUSE(TABLE ...
-- DB ...)) or QUERY '...'), whether loaded or not. The tables they load
-- from, as the server resolved them, are the loading_dependencies_*
-- columns where system.tables has them, else empty arrays.
SELECT
    database,
    name,
    create_table_query AS create_query,
    {loading_dependencies_database} AS loads_database,
    {loading_dependencies_table} AS loads_table
FROM system.tables
WHERE engine = 'Dictionary'
ORDER BY database, name
