//! Re-aggregation of the rollup tables (`daily_rollup`, `sessions`) exactly
//! where events changed: after a forget (`forget --rollups`, scope captured
//! from the targeted rows before the deletion and journaled with the
//! request) or for a day range (`chforget rollup`).
//!
//! - [`scope`]: which days and sessions are recomputed;
//! - [`query`]: the aggregation queries (`sql/rollup/`, or the profile's
//!   `[rollup]` files) rendered for a job, and the checks of the tables;
//! - [`swap`]: the recomputation and the swap of each affected partition;
//! - [`report`]: what a rollup did or would do.
//!
//! Per rollup table: the scope's keys go into a scratch table, the
//! recomputed rows into another; then, partition by partition
//! (`toYYYYMM(day)`), a staging table gets the recomputed rows and the
//! partition's untouched rows and replaces the partition atomically
//! (`ALTER TABLE ... REPLACE PARTITION ... FROM`; `DROP PARTITION` when
//! nothing is left, since current servers refuse an empty source). A plain
//! SELECT sees each partition either wholly old or wholly recomputed. Rows
//! another writer puts into an affected partition between the copy and the
//! swap are lost; a session that moves to another month can be missing
//! between the swaps of its two partitions. Scratch tables are dropped when
//! the table is done, also on failure.

mod query;
mod report;
mod scope;
mod swap;

pub use query::{RollupJob, RollupTarget, SCRATCH_INFIX, check_tables, job};
pub use report::{PartitionSwap, RollupReport, SwapMethod, TableReport, preview};
pub use scope::{DayRange, capture, discover, parse_date};
pub use swap::apply;
