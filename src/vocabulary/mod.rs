//! The words every layer speaks: errors and exit codes, SQL quoting (the only place
//! SQL text is assembled from values), request and id types, the profile, redaction, output
//! helpers, advised commands, Ctrl-C, and the personal-data map file.

pub mod data_map;
pub mod deadline;
pub mod error;
pub mod hint;
pub mod interrupt;
pub mod output;
pub mod profile;
pub mod redact;
pub mod request;
pub mod sql;
