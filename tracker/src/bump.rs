//! The smallest allocator wasm-bindgen links with: a bump allocator that rewinds when nothing is live.
//!
//! The tracker itself never allocates (events go through a static input buffer and a stack output
//! buffer); wasm-bindgen still needs a global allocator to link. Memory grows by whole pages, is
//! capped, and an exhausted heap traps rather than returning null (the alloc-error path would pull
//! in formatting code).
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, unreachable};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const PAGE: usize = 65_536;
/// At most this many pages (1 MiB) of heap.
const MAX_PAGES: usize = 16;

struct Bump;

/// Start of the heap (first grown page), next free byte, end of grown memory, live allocations.
static BASE: AtomicUsize = AtomicUsize::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: single-threaded wasm; returned blocks are disjoint until every one of them is freed.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let align = l.align() - 1;
        let mut p = (NEXT.load(Relaxed) + align) & !align;
        if p + l.size() > END.load(Relaxed) {
            let pages = l.size() / PAGE + 1;
            let base = BASE.load(Relaxed);
            let old = memory_grow(0, pages);
            if old == usize::MAX
                || (base != 0 && (END.load(Relaxed) - base) / PAGE + pages > MAX_PAGES)
            {
                unreachable();
            }
            let start = old * PAGE;
            if start != END.load(Relaxed) {
                p = start;
            }
            if base == 0 {
                BASE.store(start, Relaxed);
            }
            END.store(start + pages * PAGE, Relaxed);
        }
        NEXT.store(p + l.size(), Relaxed);
        LIVE.store(LIVE.load(Relaxed) + 1, Relaxed);
        p as *mut u8
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {
        let live = LIVE.load(Relaxed).saturating_sub(1);
        LIVE.store(live, Relaxed);
        if live == 0 {
            NEXT.store(BASE.load(Relaxed), Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unreachable()
}
