-- The ids a request's statement reads when they are too many for literal
-- lists: kind 0 a user id, 1 an anonymous id, 2 a shared anonymous id whose
-- every row goes (--include-shared). MergeTree, not Memory (gone after a
-- restart while the mutation, which reads it again for every part,
-- resumes) nor Set (18.16 cannot read one in a mutation).
CREATE TABLE {table}
(
    kind UInt8,
    id String
)
ENGINE = MergeTree
ORDER BY (kind, id)
