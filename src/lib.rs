//! chforget: GDPR right-to-be-forgotten requests carried out directly on
//! ClickHouse.
//!
//! The flow, one module per step: [`stitch`] -> [`plan`] -> [`mutate`] ->
//! [`track`] -> [`verify`], orchestrated by [`forget`] and journaled by
//! [`journal`]. [`connection`] and [`capabilities`] talk to the server,
//! [`sql`] is the only place SQL text is assembled from values.

pub mod audit;
pub mod batch;
pub mod capabilities;
pub mod cli;
pub mod commands;
pub mod connection;
pub mod error;
pub mod forget;
pub mod journal;
pub mod mutate;
pub mod mutations;
pub mod output;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod request;
pub mod rollup;
pub mod schema;
pub mod sql;
pub mod stitch;
pub mod track;
pub mod verify;
