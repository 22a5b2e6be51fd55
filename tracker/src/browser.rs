//! The wasm boundary: one buffer that the loader writes text into, and a few exports.
//!
//! Text crosses as UTF-8 bytes: the loader `encodeInto`s it into the first half of [`IO`] and passes
//! its length (negative, that is huge, when it did not fit); what the module writes back is decoded
//! from the second half. Nothing here allocates.
//!
//! Both modules only answer questions (`c` once, then `t`, `k` and `q` per event): the loader builds
//! the envelope with the browser's `JSON.stringify` and the URLs with `URL`. The extended module
//! (feature `ext`) answers two more: what a capture script's report becomes (`e`, an event name and
//! its props) and whether the fragment is part of the page (`h`, `data-hash`). Neither imports
//! anything.
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

/// The default module's exports; the extended module (feature `ext`) has them too and [`ext`]'s.
mod default {
    use super::{addr_of_mut, input, HALF, IO};
    use starling_beacon::{keeps_param, setup, verdict, Out};

    /// The script tag's [`starling_beacon::setting`]s, from [`c`].
    static mut SETTINGS: u32 = 0;

    pub(crate) fn settings() -> u32 {
        // SAFETY: single-threaded; written only by `c`.
        unsafe { SETTINGS }
    }

    /// Setup with the script tag's attributes (`name\0value\0…`) in the input: writes
    /// `name\0value\0` per global property and then `endpoint\0tenant\0domain` into the output half and
    /// returns its length (`starling_beacon::setup`), 0 when the attributes or the answer did not fit.
    /// The extended module keeps a copy of the attributes for its captures.
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
        #[cfg(feature = "ext")]
        super::ext::keep(attrs);
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

/// The extended module's own exports, for the capture scripts (web vitals, links, engagement) and the
/// `data-404`/`data-hash` rules: answers like the default module's, sent by the loader.
#[cfg(feature = "ext")]
mod ext {
    use super::{addr_of_mut, HALF, IO};
    use starling_beacon::{ext::capture, setting, Out};

    /// A copy of the script tag's attributes (`c`'s input), and its length.
    static mut ATTRS: [u8; HALF] = [0; HALF];
    static mut ATTRS_LEN: usize = 0;

    /// Keeps the attributes setup was given (they fit the input half, so they fit here).
    pub(crate) fn keep(attrs: &[u8]) {
        // SAFETY: single-threaded; the only writer, and `e` reads it only between calls.
        unsafe {
            let keep = &mut *addr_of_mut!(ATTRS);
            if let Some(to) = keep.get_mut(..attrs.len()) {
                to.copy_from_slice(attrs);
                ATTRS_LEN = attrs.len();
            }
        }
    }

    /// A capture script's report, with `href\0pathname\0host\0last\0text` in the input: writes
    /// `action\0props` into the output half and returns its length, 0 for nothing to send
    /// (`starling_beacon::ext::capture`; `kind` and `n` as `starling_beacon::kind` says).
    #[no_mangle]
    pub extern "C" fn e(len: usize, kind: u32, n0: u32, n1: u32, n2: u32, n3: u32) -> usize {
        // SAFETY: single-threaded; the output half is disjoint from the input half, and `ATTRS` is
        // only written by `c`.
        let (text, out, attrs) = unsafe {
            let (i, o) = (&mut *addr_of_mut!(IO)).split_at_mut(HALF);
            let attrs: &[u8; HALF] = &*addr_of_mut!(ATTRS);
            (i.get(..len), o, attrs.get(..ATTRS_LEN))
        };
        let (Some(text), Some(attrs)) = (text, attrs) else {
            return 0;
        };
        let mut out = Out::new(out);
        let settings = super::default::settings();
        if capture(settings, attrs, text, kind, [n0, n1, n2, n3], &mut out) {
            out.len()
        } else {
            0
        }
    }

    /// Whether the page's fragment is part of the page (`data-hash`): the loader then keeps it in a
    /// page hit's `pathname` and `href`.
    #[no_mangle]
    pub extern "C" fn h() -> bool {
        super::default::settings() & setting::HASH != 0
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
