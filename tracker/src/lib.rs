//! Starling's browser tracker, compiled to a tiny `no_std` wasm module with no allocator and no
//! wasm-bindgen.
//!
//! The default module answers the loader's questions (`js/main.js`, minified into `t.js`): once the
//! endpoint, tenant, domain and global properties (`c`), then per event whether and
//! how to send, which property keys are masked and which query parameters stay; the loader builds the
//! flock.js envelope with `JSON.stringify` and strips URLs with `URL`. Text crosses through one static
//! buffer (`b`) that the loader fills with `TextEncoder.encodeInto`. The decisions are
//! `starling_beacon`'s. Built with the feature `ext`, it is the extended module for sites that enable an
//! opt-in capture: the same exports plus `e` (what a capture script's report becomes: an event name
//! and its props, which the loader sends like a custom event) and `h` (`data-hash`). Neither module
//! imports anything. Nothing allocates: the buffers are static.
//! A panic is a trap that the loader catches, which turns the tracker off without touching the page. On
//! other targets the crate is empty, so `cargo test`/`clippy` on the host skip it.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(target_arch = "wasm32")]
pub mod browser;
