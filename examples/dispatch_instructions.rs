//! Runs one dispatch case N times, for counting instructions per dispatch
//! with valgrind: the difference between two counts (N and N + 10,000)
//! divided by 10,000 leaves out start-up and warm-up. Instruction counts
//! repeat where times on a shared machine do not.
//!
//! ```text
//! benches/dispatch_instructions.sh        # every case, one line each
//! ```
//!
//! Cases: `direct-N` calls the listener bodies through a static array of
//! function pointers; `awaited-N` awaits dispatches inside one async block;
//! `polled-N` polls each dispatch future from sync code; `async-10` awaits
//! dispatches to 10 `async fn` listeners. N is 1, 10 or 100.

#[path = "../benches/support/listeners.rs"]
mod listeners;

use std::hint::black_box;

use events::prelude::*;
use listeners::*;
use serde::{Deserialize, Serialize};

/// An event with one queued listener, for the enqueue path: dispatch
/// serializes it and stores one job in a `memory://` queue.
#[event]
#[derive(Serialize, Deserialize)]
struct Queued {
    n: u64,
}

#[listener(queue = "instructions")]
fn queued_listener(e: &Queued) {
    body(e.n);
}

macro_rules! direct {
    ($n:expr, $array:expr, $event:ident) => {
        for _ in 0..$n {
            $array.iter().for_each(|f| f(black_box(&$event { n: 1 })));
        }
    };
}

macro_rules! awaited {
    ($n:expr, $event:ident) => {
        run(async {
            for _ in 0..$n {
                black_box($event { n: black_box(1) }.dispatch().await.unwrap());
            }
        })
    };
}

macro_rules! polled {
    ($n:expr, $event:ident) => {
        for _ in 0..$n {
            black_box(run($event { n: black_box(1) }.dispatch()).unwrap());
        }
    };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: dispatch_instructions <case> <iterations>");
        std::process::exit(2);
    };
    // Warm up: the registry, the global dispatcher and every table slot.
    run(One { n: 1 }.dispatch()).unwrap();
    run(Ten { n: 1 }.dispatch()).unwrap();
    run(Hundred { n: 1 }.dispatch()).unwrap();
    run(AsyncTen { n: 1 }.dispatch()).unwrap();
    match case.as_str() {
        "direct-1" => direct!(n, DIRECT_ONE, One),
        "direct-10" => direct!(n, DIRECT_TEN, Ten),
        "direct-100" => direct!(n, DIRECT_HUNDRED, Hundred),
        "awaited-1" => awaited!(n, One),
        "awaited-10" => awaited!(n, Ten),
        "awaited-100" => awaited!(n, Hundred),
        "polled-1" => polled!(n, One),
        "polled-10" => polled!(n, Ten),
        "polled-100" => polled!(n, Hundred),
        "async-10" => awaited!(n, AsyncTen),
        "queued-memory" => {
            let queue = events::queue::Queue::memory();
            let dispatcher = events::Dispatcher::builder().queue(queue).build().unwrap();
            for i in 0..n {
                black_box(run(dispatcher.dispatch(Queued { n: i })).unwrap());
            }
        }
        other => {
            eprintln!("unknown case `{other}`");
            std::process::exit(2);
        }
    }
}
