-- The audit trail in ClickHouse: one row per audit record, appended and never
-- updated. `record` is the exact JSON line of the local audit.jsonl, whose
-- SHA-256 is `record_hash`; `prev_hash` chains it to the record before.
-- Grant the chforget user INSERT (not ALTER) on it to keep it append-only.
CREATE TABLE IF NOT EXISTS {audit_table}
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
ENGINE = MergeTree
ORDER BY (recorded_at, request_id)
