//! The sync dispatch paths allocate nothing: counted with a counting global
//! allocator (a count, not a timing, so it is exact and repeatable). Its own
//! test binary, so no other test allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use events::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static SUM: AtomicUsize = AtomicUsize::new(0);

#[event(name = "metrics.tick")]
pub struct Tick {
    pub n: usize,
}

macro_rules! sync_listeners {
    ($event:ident: $($name:ident)*) => {$(
        #[listener]
        fn $name(e: &$event) {
            SUM.fetch_add(e.n, Ordering::Relaxed);
        }
    )*};
}
sync_listeners!(Tick: l0 l1 l2 l3 l4 l5 l6 l7 l8 l9);

/// Only plain `fn` listeners: dispatch's fastest path.
#[event]
pub struct Plain {
    pub n: usize,
}
sync_listeners!(Plain: p0 p1 p2);

fn is_even(e: &Tick) -> bool {
    e.n.is_multiple_of(2)
}

#[listener(when = is_even)]
fn only_even(_: &Tick) -> Flow {
    Flow::Continue
}

#[listener(pattern = "metrics.*")]
fn metrics_wildcard(_: &AnyEvent) {}

#[event]
pub struct AsyncTick;

#[listener]
async fn async_one(_: &AsyncTick) {}

#[listener]
async fn async_two(_: &AsyncTick) {}

/// Polls a dispatch to completion on this thread, with no runtime: sync
/// listeners never wait, and no executor allocates behind the count.
fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Allocations made by `dispatches` dispatches, after one warm-up dispatch
/// (which builds the registry and the global dispatcher once).
fn allocations_per<E: Event>(make: impl Fn(usize) -> E, dispatches: usize) -> usize {
    run(make(0).dispatch()).unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for n in 0..dispatches {
        let done = run(make(n).dispatch()).unwrap();
        assert!(done.ran() > 0);
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn sync_dispatch_allocates_nothing_and_async_one_box_per_listener() {
    // One test function: the counter is process-wide, so nothing else may run.
    let sync = allocations_per(|n| Tick { n }, 1_000);
    assert_eq!(
        sync, 0,
        "sync dispatch to 12 listeners (10 plain, 1 conditional, 1 wildcard) allocated"
    );
    let plain = allocations_per(|n| Plain { n }, 1_000);
    assert_eq!(plain, 0, "sync dispatch to 3 plain listeners allocated");
    assert!(SUM.load(Ordering::Relaxed) > 0);

    // An async listener's future is boxed, and so is the rest of the
    // dispatch once it may wait (the event and the counts, kept out of the
    // dispatch future so the sync path stays small): one allocation per
    // async listener plus one, no more.
    let asynchronous = allocations_per(|_| AsyncTick, 1_000);
    assert_eq!(asynchronous, (2 + 1) * 1_000);
}
