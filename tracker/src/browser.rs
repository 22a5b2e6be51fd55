//! The wasm boundary: one buffer that the loader writes text into, and a few exports.
//!
//! Text crosses as UTF-8 bytes: the loader `encodeInto`s it into the first half of [`IO`] and passes
//! its length (negative, that is huge, when it did not fit); what the module writes back is decoded
//! from the second half. Nothing here allocates.
//!
//! The default module only answers questions (`c` once, then `t`, `k` and `q` per event): the
//! loader builds the envelope with the browser's `JSON.stringify` and the URLs with `URL`. The
//! extended module (feature `ext`) builds the whole beacon itself and sends it through its one
//! import (`e`), for the capture modules' events.
#![allow(unsafe_code)]

use core::ptr::addr_of_mut;

/// Room for the loader's text, and as much again for the module's answer.
const HALF: usize = 32 * 1024;

/// The input (first half) and output (second half) buffer. Only the loader writes the input, between
/// calls; zeroed memory costs no code as a static.
static mut IO: [u8; 2 * HALF] = [0; 2 * HALF];

/// The address of [`IO`].
#[no_mangle]
pub extern "C" fn b() -> *mut u8 {
    addr_of_mut!(IO).cast()
}

/// The `len` bytes of input, or `None` when the loader's text did not fit.
fn input(len: usize) -> Option<&'static [u8]> {
    // SAFETY: wasm is single-threaded and the loader writes the input only between calls, so this is
    // the only reference to the buffer while it lives.
    let io: &[u8; 2 * HALF] = unsafe { &*addr_of_mut!(IO) };
    io.get(..HALF)?.get(..len)
}

/// Whether the property key in the first `len` bytes of the input is sensitive: the loader's
/// `JSON.stringify` replacer masks its value (`starling_beacon::is_sensitive`). A key that did not
/// fit is checked on what did.
#[no_mangle]
pub extern "C" fn k(len: usize) -> bool {
    starling_beacon::is_sensitive(input(len.min(HALF)).unwrap_or_default())
}

#[cfg(not(feature = "ext"))]
mod default {
    use super::{addr_of_mut, input, HALF, IO};
    use starling_beacon::{keeps_param, setup, verdict, Out};

    /// The script tag's [`starling_beacon::setting`]s, from [`c`].
    static mut SETTINGS: u32 = 0;

    fn settings() -> u32 {
        // SAFETY: single-threaded; written only by `c`.
        unsafe { SETTINGS }
    }

    /// Setup with the script tag's attributes (`name\0value\0…`) in the input: writes
    /// `endpoint\0tenant\0domain` and `\0name\0value` per global property into the output half and
    /// returns its length (`starling_beacon::setup`), 0 when the attributes or the answer did not fit.
    #[no_mangle]
    pub extern "C" fn c(len: usize) -> usize {
        // SAFETY: the output half is disjoint from the input half `input` borrows, and single-threaded.
        let (attrs, out) = unsafe {
            let (i, o) = (&mut *addr_of_mut!(IO)).split_at_mut(HALF);
            (i.get(..len), o)
        };
        // Attributes that did not fit: no endpoint, and the loader turns the tracker off.
        let Some(attrs) = attrs else {
            return 0;
        };
        let mut out = Out::new(out);
        let s = setup(attrs, &mut out);
        // SAFETY: single-threaded; the only writer.
        unsafe { SETTINGS = s };
        if out.full() {
            0
        } else {
            out.len()
        }
    }

    /// Whether to send an event, with `host\0href\0last\0action` in the input, the privacy `flags`
    /// (`starling_beacon::flag`) and the serialised payload's length: 0 no, 1 with the payload as an
    /// object, 2 as a string (`starling_beacon::verdict`). Text that did not fit sends nothing.
    #[no_mangle]
    pub extern "C" fn t(len: usize, flags: u32, payload_len: usize) -> u32 {
        input(len).map_or(0, |page| verdict(settings(), flags, page, payload_len))
    }

    /// Whether the query parameter in the input (`name=value`) stays in URLs sent
    /// (`starling_beacon::keeps_param`).
    #[no_mangle]
    pub extern "C" fn q(len: usize) -> bool {
        input(len).is_some_and(|p| keeps_param(settings(), p))
    }
}

#[cfg(feature = "ext")]
mod ext {
    use super::{addr_of_mut, input};
    use starling_beacon::{take, Config, Event, Page, MAX_PAYLOAD, OUT_CAPACITY};

    /// Where beacons are written (endpoint, then body).
    static mut OUT: [u8; OUT_CAPACITY] = [0; OUT_CAPACITY];
    /// The payload while it is built, and a capture module's props.
    static mut SCRATCH: [u8; 2 * MAX_PAYLOAD] = [0; 2 * MAX_PAYLOAD];

    #[link(wasm_import_module = "e")]
    extern "C" {
        /// Posts the body at `at + url_len .. at + len` to the URL at `at .. at + url_len`.
        fn s(at: *const u8, url_len: usize, len: usize);
    }

    /// Handles one event whose first `len` bytes are in the input: `attributes \x01 page \x01
    /// action \x01 props`, that is the script tag's attributes as `name\0value\0…`, the page as
    /// [`Page::parse`] reads it, the action (empty for a page hit) and the `JSON.stringify`-ed
    /// properties. `flags` are `beacon::flag` bits; `kind` and `n` describe an opt-in capture
    /// ([`Event`]). Returns 0 when nothing was sent, else what [`Event::each`] says.
    #[no_mangle]
    pub extern "C" fn e(
        len: usize,
        flags: u32,
        kind: u32,
        n0: u32,
        n1: u32,
        n2: u32,
        n3: u32,
    ) -> u32 {
        // SAFETY: wasm is single-threaded, so these are the only references to the two buffers
        // while they live.
        let (out, scratch) = unsafe { (&mut *addr_of_mut!(OUT), &mut *addr_of_mut!(SCRATCH)) };
        let Some(mut input) = input(len) else {
            return 0;
        };
        let (cfg, ctx, action) = (
            take(&mut input, 1),
            take(&mut input, 1),
            take(&mut input, 1),
        );
        let ev = Event {
            action,
            props: input,
            kind,
            n: [n0, n1, n2, n3],
        };
        let (cfg, page) = (Config::parse(cfg), Page::parse(ctx));
        ev.each(&cfg, &page, flags, scratch, out, |at, url_end, len| {
            // SAFETY: the import only reads `len` bytes of wasm memory from `at`, inside `OUT`.
            unsafe { s(at.as_ptr(), url_end, len) }
        })
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
