//! chforget: GDPR right-to-be-forgotten requests carried out directly on
//! ClickHouse.
//!
//! The flow, one module per step: [`stitch`] → [`plan`] → [`mutate`] →
//! [`track`] → [`verify`] → [`rollup`] → [`audit`], run by the one
//! [`pipeline`] and journaled by [`journal`] in the [`state`] directory.
//! Below them: [`error`], [`sql`] (the only place SQL text is assembled from
//! values), [`request`] (ids), [`profile`], [`redact`], and the server:
//! [`connection`] → [`capabilities`] → [`server`] (with [`mutations`] and
//! [`schema`]). Above: [`report`], [`ops`] (what each command does),
//! [`batch`] files, [`progress`], [`output`] and the command line [`cli`].

pub mod audit;
pub mod batch;
pub mod capabilities;
pub mod cli;
pub mod connection;
pub mod error;
pub mod journal;
pub mod mutate;
pub mod mutations;
pub mod ops;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod redact;
pub mod report;
pub mod request;
pub mod rollup;
pub mod schema;
pub mod server;
pub mod sql;
pub mod state;
pub mod stitch;
pub mod track;
pub mod verify;
