-- The partitions holding rows of a statement before it runs ({predicate}):
-- where its mutation leaves the old parts behind. {replica} numbers the
-- replica when every replica of a cluster is read.
SELECT DISTINCT {replica} AS replica, toString(_partition_id) AS id
FROM {events}
WHERE {predicate}
