//! What the `metrics` feature costs a sync dispatch, in one run: the same
//! events dispatched with metrics off and on.
//!
//! ```text
//! cargo bench --features metrics --bench metrics
//! ```
//!
//! - `global`: `event.dispatch()` through the global dispatcher, which has
//!   no observer (what `benches/dispatch.rs` measures as `sync/dispatch`).
//! - `off`: a dispatcher built with no observer.
//! - `observer`: the same with an observer that records nothing and keeps
//!   the default interest, everything: the full observed path (the
//!   envelope, a boxed future, a clock read per listener).
//! - `lean`: an observer that records nothing and asks for what `Metrics`
//!   asks for (dispatches, listener runs, timing, jobs): the lean path.
//! - `on`: the same with `events::metrics::Metrics` (its own Prometheus
//!   registry).
//!
//! The difference `on - lean` is what recording costs, `lean - off` what
//! the seam costs; `on - off` what turning metrics on costs in all.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use events::observe::{Interest, Observer};
use events::prelude::*;
use events::{Dispatcher, metrics::Metrics};

// The direct-call tables are `benches/dispatch.rs`'s.
#[allow(dead_code)]
#[path = "support/listeners.rs"]
mod listeners;
use listeners::*;

/// Observes and records nothing.
struct Nothing;
impl Observer for Nothing {}

/// Records nothing, asking for what `Metrics` asks for.
struct Lean;
impl Observer for Lean {
    fn interest(&self) -> Interest {
        Metrics::prometheus().interest()
    }
}

fn overhead(c: &mut Criterion) {
    let off = Dispatcher::builder().build().unwrap();
    let observer = Dispatcher::builder().observe(Nothing).build().unwrap();
    let lean = Dispatcher::builder().observe(Lean).build().unwrap();
    let metrics = Metrics::prometheus();
    let on = Dispatcher::builder()
        .observe(metrics.clone())
        .build()
        .unwrap();
    let mut group = c.benchmark_group("metrics");
    macro_rules! cases {
        ($n:expr, $event:ident) => {
            group.bench_function(BenchmarkId::new("global", $n), |b| {
                b.iter_custom(|n| awaited(n, || $event { n: black_box(1) }.dispatch()))
            });
            for (name, dispatcher) in [
                ("off", &off),
                ("observer", &observer),
                ("lean", &lean),
                ("on", &on),
            ] {
                group.bench_function(BenchmarkId::new(name, $n), |b| {
                    b.iter_custom(|n| {
                        awaited(n, || dispatcher.dispatch($event { n: black_box(1) }))
                    })
                });
            }
        };
    }
    cases!(1, One);
    cases!(10, Ten);
    group.finish();
    assert!(
        metrics
            .render()
            .unwrap()
            .contains("events_dispatched_total{event="),
        "the `on` cases recorded"
    );
}

/// `n` dispatches awaited one after another inside one async block, polled
/// on this thread.
fn awaited<F, D>(n: u64, mut dispatch: D) -> Duration
where
    D: FnMut() -> F,
    F: std::future::Future<Output = Result<events::Dispatched, events::DispatchError>>,
{
    run(async {
        let start = Instant::now();
        for _ in 0..n {
            dispatch().await.unwrap();
        }
        start.elapsed()
    })
}

criterion_group!(benches, overhead);
criterion_main!(benches);
