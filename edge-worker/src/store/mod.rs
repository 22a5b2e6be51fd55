//! Storage adapters: D1 (rollups, salts), R2 (archive, spool), the Cache API (snapshots for D1 outages). They execute what the core decides.

pub mod archive;
pub mod d1;
pub mod maintenance;
pub mod retention;
pub mod salt;
pub mod segments;
pub mod snapshot;
pub mod spool;
pub mod visits;
