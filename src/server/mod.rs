//! The server and what it can do: the HTTP connection, capabilities, the schema check,
//! where the tables live and which hosts a statement reaches, `system.mutations`, and the
//! identity a journal keeps of the server and table a request ran on, and the discovery of
//! where a subject's ids live (`map`).

pub mod capabilities;
pub mod connected;
pub mod connection;
pub mod discover;
pub mod identity;
pub mod reach;
pub mod schema;
#[cfg(test)]
pub mod scripted;
pub mod system_mutations;
