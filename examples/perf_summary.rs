//! One table of what the framework costs, measured in one run:
//!
//! ```text
//! cargo run --release --example perf_summary
//! ```
//!
//! Times are medians of 11 rounds of 100,000 dispatches each (fewer for the
//! slow cases); ratios compare against the same listener bodies called
//! directly through a static array of function pointers, in the same run.
//! "Awaited" dispatches run one after another inside one async block, as a
//! service awaits them; "polled" ones are each a future of their own, polled
//! from sync code with a fresh `Context`.
//! Allocation counts and bytes come from a counting global allocator and are
//! exact. `benches/dispatch.rs` measures the same cases with criterion.

#[path = "../benches/support/listeners.rs"]
mod listeners;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use events::prelude::*;
use listeners::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, counting on the way.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Median time per iteration of `f`, in nanoseconds, over 11 rounds of `n`
/// iterations.
fn per_iteration(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let mut rounds: Vec<f64> = (0..11)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[5]
}

/// Heap allocations per call of `f`, over 1,000 calls.
fn allocations_per(mut f: impl FnMut()) -> f64 {
    f();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..1_000 {
        f();
    }
    (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / 1_000.0
}

/// Median time per dispatch, in nanoseconds, over 11 rounds of `n`
/// dispatches awaited one after another inside one async block: how a
/// service calls `event.dispatch().await`.
fn per_awaited_dispatch<E: Event>(n: u32, make: impl Fn() -> E) -> f64 {
    let mut rounds: Vec<f64> = (0..12)
        .map(|_| {
            run(async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(make().dispatch().await.unwrap());
                }
                start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
            })
        })
        .skip(1)
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[5]
}

fn row(case: &str, nanos: f64, baseline: Option<f64>, allocations: f64) {
    let ratio = baseline.map_or(String::new(), |b| format!("{:.2}x", nanos / b));
    println!("{case:<52} {nanos:>10.1} {ratio:>9} {allocations:>8.1}");
}

fn main() {
    println!(
        "{:<52} {:>10} {:>9} {:>8}",
        "case", "ns/event", "vs direct", "allocs"
    );
    macro_rules! sync_rows {
        ($n:expr, $direct:expr, $event:ident) => {{
            let mut direct = || $direct.iter().for_each(|f| f(black_box(&$event { n: 1 })));
            let base = per_iteration(100_000, &mut direct);
            row(
                &format!("direct calls, {} listener(s)", $n),
                base,
                None,
                allocations_per(&mut direct),
            );
            let mut polled = || {
                black_box(run($event { n: black_box(1) }.dispatch()).unwrap());
            };
            row(
                &format!("sync dispatch, {} fn listener(s), awaited", $n),
                per_awaited_dispatch(100_000, || $event { n: black_box(1) }),
                Some(base),
                allocations_per(&mut polled),
            );
            row(
                &format!("sync dispatch, {} fn listener(s), polled", $n),
                per_iteration(100_000, &mut polled),
                Some(base),
                allocations_per(&mut polled),
            );
        }};
    }
    sync_rows!(1, DIRECT_ONE, One);
    sync_rows!(10, DIRECT_TEN, Ten);
    sync_rows!(100, DIRECT_HUNDRED, Hundred);
    macro_rules! async_row {
        ($case:expr, $event:ident) => {{
            let mut polled = || {
                black_box(run($event { n: black_box(1) }.dispatch()).unwrap());
            };
            row(
                $case,
                per_awaited_dispatch(100_000, || $event { n: black_box(1) }),
                None,
                allocations_per(&mut polled),
            );
        }};
    }
    async_row!("async dispatch, 1 async fn listener, awaited", AsyncOne);
    async_row!("async dispatch, 10 async fn listeners, awaited", AsyncTen);
    let mut wild = || {
        black_box(run(Wild { n: black_box(1) }.dispatch()).unwrap());
    };
    row(
        "dispatch, 100 wildcard patterns registered, 1 hit",
        per_iteration(100_000, &mut wild),
        None,
        allocations_per(&mut wild),
    );
    let mut pattern = || {
        black_box(events::matches_pattern(
            black_box("appointment.*"),
            black_box("appointment.slot.moved"),
        ));
    };
    row(
        "matches_pattern (one pattern, one name)",
        per_iteration(100_000, &mut pattern),
        None,
        0.0,
    );
    {
        let fake = events::fake();
        let mut faked = || {
            black_box(run(Ten { n: black_box(1) }.dispatch()).unwrap());
        };
        row(
            "dispatch recorded by events::fake()",
            per_iteration(20_000, &mut faked),
            None,
            allocations_per(&mut faked),
        );
        drop(fake);
    }
    let registry = events::registry();
    let build = per_iteration(200, || drop(black_box(events::__private::build_registry())));
    row(
        &format!(
            "registry build, {} listeners (once, at start-up)",
            registry.listeners().len()
        ),
        build,
        None,
        allocations_per(|| drop(events::__private::build_registry())),
    );

    // Memory per 1,000 queued events: jobs waiting in a memory queue.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let queue = events::queue::Queue::memory();
    let dispatcher = events::Dispatcher::builder()
        .queue(queue.clone())
        .build()
        .unwrap();
    runtime
        .block_on(dispatcher.dispatch(Queued {
            id: 0,
            payload: String::new(),
        }))
        .unwrap();
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    for id in 1..=1_000 {
        let event = Queued {
            id,
            payload: "appointment 7 for customer 42".into(),
        };
        runtime.block_on(dispatcher.dispatch(event)).unwrap();
    }
    let bytes = LIVE_BYTES.load(Ordering::SeqCst) - before;
    println!(
        "{:<52} {:>10} (a {}-byte JSON payload each)",
        "memory per 1,000 queued events (memory://)",
        format!("{:.1} KiB", bytes as f64 / 1024.0),
        serde_json::to_string(&Queued {
            id: 1_000,
            payload: "appointment 7 for customer 42".into()
        })
        .unwrap()
        .len()
    );
}

#[event(name = "perf.queued")]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Queued {
    pub id: u64,
    pub payload: String,
}

#[listener(queue = "perf")]
async fn queued_listener(e: &Queued) {
    body(e.id);
}
