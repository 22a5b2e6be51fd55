//! Storage adapters: D1 (rollups, salts), R2 (archive). They execute what the core decides.

pub mod archive;
pub mod d1;
pub mod maintenance;
pub mod retention;
pub mod salt;
pub mod visits;
