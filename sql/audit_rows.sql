-- Every row of the audit table, for `chforget audit verify` to compare with
-- the local chain.
SELECT
    toUInt32(recorded_at) AS recorded_at,
    request_id,
    action,
    project_id,
    user_id,
    status,
    record_hash,
    prev_hash,
    record
FROM {table}
ORDER BY recorded_at, record_hash
