//! Dispatch costs, against the same listener bodies called directly.
//!
//! ```text
//! cargo bench --bench dispatch
//! ```
//!
//! Each `direct/N` case calls N listener bodies through a static array of
//! function pointers: the floor any dispatcher sits on. `sync/N` dispatches an
//! event to N registered `fn` listeners with the same bodies, through the
//! global dispatcher (`event.dispatch()`), polled to completion on this thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use events::prelude::*;

#[path = "support/listeners.rs"]
mod listeners;
use listeners::*;

/// `n` iterations of `body`, timed: the loop every `direct` and `dispatch`
/// case shares, so their ratio compares like with like.
fn timed(n: u64, mut body: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        body();
    }
    start.elapsed()
}

/// `n` dispatches awaited one after another inside one async block, polled
/// on this thread: how services call `event.dispatch().await`, from inside
/// their own async code.
macro_rules! awaited {
    ($n:expr, $event:expr) => {
        run(async {
            let start = Instant::now();
            for _ in 0..$n {
                $event.dispatch().await.unwrap();
            }
            start.elapsed()
        })
    };
}

fn sync_vs_direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    macro_rules! direct_and_awaited {
        ($n:expr, $direct:expr, $event:ident) => {
            group.bench_function(BenchmarkId::new("direct", $n), |b| {
                b.iter_custom(|n| {
                    timed(n, || {
                        $direct.iter().for_each(|f| f(black_box(&$event { n: 1 })))
                    })
                })
            });
            group.bench_function(BenchmarkId::new("dispatch", $n), |b| {
                b.iter_custom(|n| awaited!(n, $event { n: black_box(1) }))
            });
        };
    }
    direct_and_awaited!(1, DIRECT_ONE, One);
    direct_and_awaited!(10, DIRECT_TEN, Ten);
    direct_and_awaited!(100, DIRECT_HUNDRED, Hundred);
    group.finish();

    // Each dispatch a future of its own, polled from sync code with a fresh
    // `Context`: what a caller outside async code pays on top.
    let mut group = c.benchmark_group("sync, polled from sync code");
    macro_rules! polled {
        ($n:expr, $event:ident) => {
            group.bench_function(BenchmarkId::new("dispatch", $n), |b| {
                b.iter(|| run($event { n: black_box(1) }.dispatch()).unwrap())
            });
        };
    }
    polled!(1, One);
    polled!(10, Ten);
    polled!(100, Hundred);
    group.finish();
}

fn async_listeners(c: &mut Criterion) {
    let mut group = c.benchmark_group("async");
    group.bench_function(BenchmarkId::new("dispatch", 1), |b| {
        b.iter_custom(|n| awaited!(n, AsyncOne { n: black_box(1) }))
    });
    group.bench_function(BenchmarkId::new("dispatch", 10), |b| {
        b.iter_custom(|n| awaited!(n, AsyncTen { n: black_box(1) }))
    });
    group.finish();
}

fn wildcards_and_fakes(c: &mut Criterion) {
    let mut group = c.benchmark_group("wildcard");
    group.bench_function("dispatch, 100 patterns registered, 1 matches", |b| {
        b.iter(|| run(Wild { n: black_box(1) }.dispatch()).unwrap())
    });
    group.bench_function("matches_pattern", |b| {
        b.iter(|| {
            events::matches_pattern(
                black_box("appointment.*"),
                black_box("appointment.slot.moved"),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fake");
    group.bench_function("dispatch recorded by events::fake()", |b| {
        b.iter_batched(
            events::fake,
            |fake| {
                for n in 0..100 {
                    run(Ten { n }.dispatch()).unwrap();
                }
                fake
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn registry_start_up(c: &mut Criterion) {
    let listeners = events::registry().listeners().len();
    c.bench_function(&format!("registry/build, {listeners} listeners"), |b| {
        b.iter(events::__private::build_registry)
    });
}

criterion_group!(
    benches,
    sync_vs_direct,
    async_listeners,
    wildcards_and_fakes,
    registry_start_up
);
criterion_main!(benches);
