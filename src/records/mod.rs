//! What is kept: the state directory, each request's signed journal, and the
//! hash-chained audit trail (local and in ClickHouse).

pub mod audit;
pub mod intake;
pub mod journal;
pub mod state;
