//! Starling's browser tracker, compiled to a tiny `no_std` wasm module.
//!
//! The loader (`js/main.js`, bundled with wasm-bindgen's glue into `t.js`) reads the page, writes each
//! page hit or custom event into the module's input buffer ([`buf`]) and calls [`ev`]; [`ev`] hands the
//! bytes to `starling_core::beacon`, which decides whether, what and where to send, and calls back
//! into JS (`js/send.js`) to send the beacon. Nothing allocates per event (the input buffer is static,
//! the output is on the stack); wasm-bindgen still links a tiny bump allocator. A panic is a trap that
//! the loader catches, which turns the tracker off without touching the page. On other targets the
//! crate is empty, so `cargo test`/`clippy` on the host skip it.
//!
//! Build with `scripts/build-tracker.sh`, never together with the edge worker for wasm32 in one cargo
//! invocation: the worker turns on wasm-bindgen's and the core's `std` features, and std's panic handler
//! then clashes with this crate's.
#![cfg_attr(target_arch = "wasm32", no_std)]

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod bump;

#[cfg(target_arch = "wasm32")]
pub use browser::{buf, ev};
