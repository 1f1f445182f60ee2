-- The anonymous ids stitched to the user of an `--anonymous` request when
-- its rows were hidden (`request add --hide-now`, `queue hide`). Hiding
-- masks the user's rows, and a merge or the window's APPLY DELETED MASK
-- removes them, and with them the only link between the user and these
-- ids: so they are stitched and kept here before anything is hidden, and
-- the window erases and verifies them with the user's. `anonymous_hex` is
-- the id's bytes in hex (ids need not be UTF-8); `shared`: other users
-- were seen with it too (a shared device: on a table without a user-id
-- column its rows go only with --include-shared). The rows of a request go
-- once it is completed (its journal and audit record keep keyed hashes).
-- Kept like the intake table ({engine}, see server/reach/kept.rs).
CREATE TABLE IF NOT EXISTS {table}{on_every_host}
(
    request_id String,
    anonymous_hex String,
    shared UInt8,
    recorded_at DateTime
)
ENGINE = {engine}
ORDER BY (request_id, anonymous_hex)
