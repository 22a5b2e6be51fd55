//! Randomness from the runtime's `crypto.getRandomValues` (Web Crypto), for ids and salts.

use std::cell::RefCell;

use wasm_bindgen::JsCast;

/// `N` cryptographically random bytes.
// Web Crypto is part of every Workers runtime; without it no id or salt can be made safely, so its
// absence is a crash, not an error to handle.
#[allow(clippy::expect_used)]
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).expect("crypto global");
    let get = js_sys::Reflect::get(&crypto, &"getRandomValues".into())
        .expect("getRandomValues")
        .unchecked_into::<js_sys::Function>();
    let array = js_sys::Uint8Array::new_with_length(N as u32);
    get.call1(&crypto, &array).expect("getRandomValues call");
    array.copy_to(&mut out);
    out
}

/// Random bytes drawn 4 KiB at a time for [`id`]: one `getRandomValues` call per 256 ids instead of
/// one per request (two property reads, a typed array and a copy each time: about 100 µs per request
/// in `node bench/worker-profile.mjs`). The bytes are as random as before; ids are not secrets.
const POOL_BYTES: usize = 4096;

thread_local! {
    /// The pool and how much of it has been handed out.
    static POOL: RefCell<([u8; POOL_BYTES], usize)> = const { RefCell::new(([0; POOL_BYTES], POOL_BYTES)) };
}

/// A random 128-bit id as 32 lower-case hex characters. Request ids name accepted batches, so they
/// must never repeat: 128 random bits, as for any UUIDv4.
pub fn id() -> String {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.1 + 16 > POOL_BYTES {
            *p = (bytes::<POOL_BYTES>(), 0);
        }
        let at = p.1;
        p.1 += 16;
        hex(&p.0[at..at + 16])
    })
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}
