//! The wasm boundary: an input buffer, one export for events, one import to send.
//!
//! Text crosses as UTF-8 bytes: the loader `encodeInto`s each event straight into the input buffer and
//! the import receives offsets into wasm memory that the loader decodes. Nothing here allocates.
#![allow(unsafe_code)]

use core::ptr::addr_of_mut;

use starling_beacon::{take, Config, Event, Page, MAX_PAYLOAD, OUT_CAPACITY};

/// Room for one event's input: attributes, page, action and properties.
const INPUT_CAPACITY: usize = 32 * 1024;

/// The input buffer. Only the loader writes it, between calls, and only [`e`] reads it.
static mut INPUT: [u8; INPUT_CAPACITY] = [0; INPUT_CAPACITY];
/// Where beacons are written (endpoint, then body); zeroed memory costs no code as a static.
static mut OUT: [u8; OUT_CAPACITY] = [0; OUT_CAPACITY];
/// The payload while it is built, and a capture module's props.
static mut SCRATCH: [u8; 2 * MAX_PAYLOAD] = [0; 2 * MAX_PAYLOAD];

#[link(wasm_import_module = "e")]
extern "C" {
    /// Posts the body at `at + url_len .. at + len` to the URL at `at .. at + url_len`.
    fn s(at: *const u8, url_len: usize, len: usize);
}

/// The address of the input buffer, which holds 32 KiB.
#[no_mangle]
pub extern "C" fn b() -> *mut u8 {
    addr_of_mut!(INPUT).cast()
}

/// Whether the property key in the first `len` bytes of the input buffer is sensitive: the loader's
/// `JSON.stringify` replacer masks its value (`starling_beacon::is_sensitive`).
#[no_mangle]
pub extern "C" fn k(len: usize) -> bool {
    // SAFETY: as in `e`, the only reference to the input buffer while it lives.
    let input: &[u8] = unsafe { &*addr_of_mut!(INPUT) };
    starling_beacon::is_sensitive(input.get(..len).unwrap_or_default())
}

/// Handles one event whose first `len` bytes are in the input buffer: `attributes \x01 page \x01
/// action \x01 props`, that is the script tag's attributes as `name\0value\0…`, the page as
/// [`Page::parse`] reads it, the action (empty for a page hit) and the `JSON.stringify`-ed
/// properties. `flags` are `beacon::flag` bits; `kind` and `n` describe an opt-in capture
/// ([`Event`]). Returns 0 when nothing was sent, else what [`Event::sent`] says.
#[no_mangle]
pub extern "C" fn e(len: usize, flags: u32, kind: u32, n0: u32, n1: u32, n2: u32, n3: u32) -> u32 {
    // SAFETY: wasm is single-threaded and the loader writes the input only between calls, so these are
    // the only references to the three buffers while they live.
    let (input, out, scratch) = unsafe {
        (
            &*addr_of_mut!(INPUT),
            &mut *addr_of_mut!(OUT),
            &mut *addr_of_mut!(SCRATCH),
        )
    };
    let mut input = input.get(..len).unwrap_or_default();
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

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
