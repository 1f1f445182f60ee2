-- Predicate of a mapped table's rows of the stitched anonymous ids:
-- {anonymous_columns_in} is `c IN (...)` per anonymous-id column, joined
-- by OR; {owner} keeps the rows of other users (no user id in any user-id
-- column, or with --include-shared also any row of a shared id);
-- {in_project} as in mapped_user.sql.
{in_project}({anonymous_columns_in})
AND ({owner})
