-- The server's dictionaries as `chforget map` reads them: what each loads
-- from, as system.dictionaries says (`source`, e.g. `ClickHouse: db.table`;
-- empty until the dictionary is loaded). 18.16 has no `database` column
-- (its dictionaries come from the XML configuration, named without one):
-- {database} is the column where the server has it, else ''.
SELECT
    {database} AS database,
    name,
    source
FROM system.dictionaries
ORDER BY database, name
