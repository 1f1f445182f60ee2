-- The rows an anonymous target matches now, per anonymous id (as hex: a
-- stored id may hold bytes that are not UTF-8), with exactly the predicate
-- of its DELETE statement ({predicate}). {replica}: see count_user.sql.
SELECT {replica} AS replica, hex({anonymous_id}) AS id, toUInt64(count()) AS n
FROM {events}
WHERE {predicate}
GROUP BY replica, id
