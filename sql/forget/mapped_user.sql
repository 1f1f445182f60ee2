-- Predicate of a mapped table's rows (a table of the personal-data map
-- besides the events table) that hold one of the users' ids in any of its
-- user-id columns: {user_columns_in} is `c IN (...)` per column, joined by
-- OR; {in_project} is `project_column IN (...) AND ` where the table has a
-- project column, else empty (erased by id across the table). Only IN:
-- it never yields NULL (see user.sql).
{in_project}({user_columns_in})
