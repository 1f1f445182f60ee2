//! What each command does, as library calls: commands parse their flags,
//! call one of these and render what comes back.

pub mod audit;
pub mod forget;
pub mod kill;
pub mod rollup;
pub mod status;
pub mod verify;
