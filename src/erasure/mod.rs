//! The request's steps, in their order: stitch → plan → mutate → track → verify →
//! rollup, and the physical check of what is left on disk.

pub mod ids_table;
pub mod mutate;
pub mod physical;
pub mod plan;
pub mod rollup;
pub mod stitch;
pub mod track;
pub mod verify;
