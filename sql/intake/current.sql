-- The current state of every request ({condition} narrows them): its row
-- of the highest version.
SELECT
    request_id, version, state, ticket, project_id, user_id, user_hashed, anonymous, regime,
    received_at, due_at, extended_until, extension_reason, requested_by, approved_by, reason,
    also_wiped, erasure_id, hidden_at, completed_at, recorded_at
FROM {table}
WHERE {condition}
ORDER BY request_id, version DESC
LIMIT 1 BY request_id
