//! Starling's browser tracker, compiled to a tiny `no_std` wasm module with no allocator and no
//! wasm-bindgen.
//!
//! The loader (`js/main.js`, minified into `t.js`) reads the page, writes each page hit or custom event
//! into the module's input buffer ([`b`](browser::b)) and calls [`e`](browser::e); `e` hands the bytes to
//! `starling_beacon`, which decides whether, what and where to send, and calls the one import, `e.s`,
//! to send the beacon. The module talks to JS through plain wasm imports and exports (numbers and
//! offsets into its memory), so the loader instantiates it with a few lines of its own instead of
//! wasm-bindgen's glue. Nothing allocates: the input, output and scratch buffers are static. A panic is
//! a trap that the loader catches, which turns the tracker off without touching the page. On other
//! targets the crate is empty, so `cargo test`/`clippy` on the host skip it.
//!
//! Built twice by `scripts/build-tracker.sh`: the default module, and with the feature `ext` the module
//! for sites that enable an opt-in capture.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(target_arch = "wasm32")]
pub mod browser;
