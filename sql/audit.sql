-- The audit trail in ClickHouse: one row per audit record, appended and never
-- updated. `record` is the exact JSON line of the local audit.jsonl, whose
-- SHA-256 is `record_hash`; `prev_hash` chains it to the record before.
-- Grant the chforget user INSERT (not ALTER) on it to keep it append-only.
-- On many hosts it is created on every one as one replicated table that
-- every server holds whole ({engine}, see server/reach/kept.rs), so that the
-- trail survives the loss of any one server; else a MergeTree table.
CREATE TABLE IF NOT EXISTS {audit_table}{on_every_host}
(
    recorded_at DateTime,
    request_id String,
    action String,
    project_id String,
    user_id String,
    status String,
    record_hash String,
    prev_hash String,
    record String
)
ENGINE = {engine}
ORDER BY (recorded_at, request_id)
