//! One file per subcommand (a folder, a file a part, where one would be
//! long): each turns its flags into one library call (the `ops` layer or a
//! step module) and one rendering.

pub mod audit;
pub mod completions;
pub mod doctor;
pub mod forget;
pub mod init;
pub mod man;
pub mod map;
pub mod mutations;
pub mod queue;
pub mod report;
pub mod request;
pub mod resume;
pub mod rollup;
pub mod status;
pub mod stitch;
pub mod verify;
