-- Hide a request's rows at once (`queue hide`, `request add --hide-now`): a
-- lightweight DELETE writes a mask, and the rows stop appearing in queries;
-- they stay on disk until the window's ALTER TABLE ... DELETE rewrites
-- their parts. {predicate} is the user predicate of the erasure itself.
DELETE FROM {table}{every_host} WHERE {predicate}
