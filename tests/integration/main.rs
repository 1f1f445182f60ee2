//! The integration suite: one binary, run once per engine by `scripts/test`
//! against the server named by `CLICKHOUSE_URL` (a real ClickHouse, never a
//! mock). Each test gets a fresh database named after it.

mod audit;
mod batch;
mod cluster;
mod common;
mod errors;
mod forget;
mod help;
mod hide_hostile;
mod ids;
mod intake;
mod intake_hostile;
mod late;
mod map;
mod map_hostile;
mod mutations;
mod physical;
mod progress;
mod resume;
mod rollup;
mod servers;
mod smoke;
mod state;
