-- Stored ids of one column that differ from the requested ones only by
-- surrounding whitespace or case, for a request that matched no row:
-- {column} is the column, {normalized} the requested ids trimmed and in
-- lower case. As hex: a stored id may hold any bytes.
SELECT DISTINCT hex(toString(assumeNotNull({column}))) AS id
FROM {events}
WHERE {scope}
  AND isNotNull({column})
  AND lowerUTF8(replaceRegexpAll(toString(assumeNotNull({column})), {blank_edges}, '')) IN {normalized}
LIMIT 100
