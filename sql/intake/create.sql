-- The requests as they arrive (`chforget request add`), one row per state
-- change: the history is appended, never updated, and the current state of
-- a request is its row of the highest `version`. Times are UTC; 0 stands
-- for "not yet" (extended_until, hidden_at, completed_at). `user_id` holds
-- the id as needed to erase it until the request is completed, then its
-- keyed hash (`user_hashed` = 1). On many hosts it is one replicated table
-- every server holds whole ({engine}, see server/reach/kept.rs).
CREATE TABLE IF NOT EXISTS {table}{on_every_host}
(
    request_id String,
    version UInt64,
    state String,
    ticket String,
    project_id String,
    user_id String,
    user_hashed UInt8,
    anonymous UInt8,
    regime String,
    received_at DateTime,
    due_at DateTime,
    extended_until DateTime,
    extension_reason String,
    requested_by String,
    approved_by String,
    reason String,
    also_wiped Array(String),
    erasure_id String,
    hidden_at DateTime,
    completed_at DateTime,
    recorded_at DateTime
)
ENGINE = {engine}
ORDER BY (request_id, version)
