-- The Millimetric reference schema. Valid unchanged on ClickHouse 18.16 and
-- current releases: DateTime (not DateTime64), no LowCardinality, no JSON.
-- `chforget init` runs it in the configured database.

-- Raw events. user_id is NULL until a visitor identifies; anonymous_id is the
-- device/browser id it was seen with.
CREATE TABLE IF NOT EXISTS events
(
    project_id String,
    user_id Nullable(String),
    anonymous_id String,
    session_id String,
    event String,
    url String,
    ip_hash String,
    ts DateTime
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, ts, anonymous_id);

-- Per (project_id, toDate(ts), event): count() AS events,
-- uniqExact(anonymous_id) AS visitors.
CREATE TABLE IF NOT EXISTS daily_rollup
(
    project_id String,
    day Date,
    event String,
    events UInt64,
    visitors UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, event);

-- Per (project_id, session_id): toDate(min(ts)) AS day, min(ts) AS started_at,
-- max(ts) AS ended_at, count() AS events,
-- countIf(event = 'pageview') AS pageviews.
CREATE TABLE IF NOT EXISTS sessions
(
    project_id String,
    session_id String,
    day Date,
    started_at DateTime,
    ended_at DateTime,
    events UInt64,
    pageviews UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, session_id);
