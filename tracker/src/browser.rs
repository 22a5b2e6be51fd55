//! The wasm boundary: an input buffer, one export for events, one import to send.
//!
//! Text crosses as UTF-8 bytes: the loader `encodeInto`s each event straight into [`INPUT`] (no
//! allocation, no copy through the glue) and the import receives views into wasm memory that
//! `js/send.js` decodes. Nothing here allocates.
#![allow(unsafe_code)]

use core::ptr::addr_of_mut;

use starling_core::beacon::{decide, take, Config, Out, Page, OUT_CAPACITY};
use wasm_bindgen::prelude::wasm_bindgen;

/// Room for one event's input: attributes, page, action and properties.
const INPUT_CAPACITY: usize = 32 * 1024;

/// The input buffer. Only the loader writes it, between calls, and only [`ev`] reads it.
static mut INPUT: [u8; INPUT_CAPACITY] = [0; INPUT_CAPACITY];

#[wasm_bindgen(module = "/js/send.js")]
extern "C" {
    /// Posts `body` to `url` (sendBeacon, else fetch with keepalive; failures are retried later).
    fn send(url: &[u8], body: &[u8]);
}

/// The address of the input buffer, which holds 32 KiB.
#[wasm_bindgen]
pub fn buf() -> *mut u8 {
    addr_of_mut!(INPUT).cast()
}

/// Handles one event whose first `len` bytes are in the input buffer: `attributes \x01 page \x01
/// action \x01 props`, that is the script tag's attributes as `name\0value\0…`, the page as
/// [`Page::parse`] reads it, the action (empty for a page hit) and the `JSON.stringify`-ed
/// properties. `flags` are `beacon::flag` bits. Returns whether a beacon was sent.
#[wasm_bindgen]
pub fn ev(len: usize, flags: u32) -> bool {
    // SAFETY: wasm is single-threaded and the loader writes the buffer only between calls, so this
    // is the only reference while it lives.
    let input: &[u8] = unsafe { &*addr_of_mut!(INPUT) };
    let mut input = input.get(..len).unwrap_or_default();
    let (cfg, ctx, action) = (
        take(&mut input, 1),
        take(&mut input, 1),
        take(&mut input, 1),
    );
    let mut buf = [0u8; OUT_CAPACITY];
    let mut out = Out::new(&mut buf);
    let Some(url_end) = decide(
        &Config::parse(cfg),
        &Page::parse(ctx),
        action,
        input,
        flags,
        &mut out,
    ) else {
        return false;
    };
    let (url, body) = out.bytes().split_at_checked(url_end).unwrap_or_default();
    send(url, body);
    true
}
