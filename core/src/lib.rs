//! Starling's pure core: everything that decides, nothing that does I/O.
//!
//! The edge worker and the tracker are thin adapters around this crate. It reads no clock (callers pass
//! `now`), touches no network or storage, and builds both natively and for `wasm32-unknown-unknown`, so
//! almost all behaviour is tested with plain `cargo test`.
//!
//! The ingest path is a chain of small steps: [`token`] verifies a JWT into [`claims::Claims`],
//! [`claims`] turns claims into a [`claims::TenantId`] (the only way to get one), [`ingest`] parses an
//! NDJSON body and quarantines bad rows, [`enrich`] adds browser/OS/device/bot, geo, source and UTM
//! fields, [`identity`] derives the cookieless visitor id and sessions, and [`rollup`] turns enriched
//! events into idempotent rollup deltas. [`query`] plans analytics endpoint requests into SQL over
//! those rollups. [`settings`] validates a tenant's white-label dashboard settings. [`beacon`] re-exports the
//! tracker's decisions (the `no_std` crate `starling-beacon`).
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "std")]
pub mod archive;
#[cfg(feature = "std")]
pub mod audit;
pub use starling_beacon as beacon;
#[cfg(feature = "std")]
pub mod body;
#[cfg(feature = "std")]
pub mod caps;
#[cfg(feature = "std")]
pub mod captures;
#[cfg(feature = "std")]
pub mod claims;
#[cfg(feature = "std")]
pub mod enrich;
#[cfg(feature = "std")]
pub mod event;
#[cfg(feature = "std")]
pub mod field_error;
/// Funnels: saved ordered steps of goals or pages, evaluated per visit by the consumer.
pub mod funnels;
#[cfg(feature = "std")]
pub mod goals;
#[cfg(feature = "std")]
pub mod idempotency;
#[cfg(feature = "std")]
pub mod identity;
#[cfg(feature = "std")]
pub mod ingest;
#[cfg(feature = "std")]
pub mod keys;
#[cfg(feature = "std")]
pub mod lifecycle;
#[cfg(feature = "std")]
pub mod mint;
pub mod names;
#[cfg(feature = "std")]
pub mod pack;
#[cfg(feature = "std")]
pub mod plan;
#[cfg(feature = "std")]
pub mod props;
#[cfg(feature = "std")]
pub mod query;
#[cfg(feature = "std")]
pub mod ratelimit;
#[cfg(feature = "std")]
pub mod rollup;
#[cfg(feature = "std")]
pub mod segment;
#[cfg(feature = "std")]
pub mod segments;
#[cfg(feature = "std")]
pub mod settings;
#[cfg(feature = "std")]
pub mod sql;
#[cfg(feature = "std")]
pub mod tenant;
#[cfg(feature = "std")]
pub mod time;
#[cfg(feature = "std")]
pub mod token;
#[cfg(feature = "std")]
pub mod usage;
#[cfg(feature = "std")]
pub mod vitals;
