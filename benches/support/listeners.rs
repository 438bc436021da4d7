//! The events and listeners both dispatch benchmarks use: `benches/dispatch.rs`
//! (criterion) and `examples/perf_summary.rs` (one table) include this file.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use events::prelude::*;

pub static SINK: AtomicU64 = AtomicU64::new(0);

/// The body every listener runs: touch the event, keep the compiler honest.
#[inline(never)]
pub fn body(n: u64) {
    SINK.fetch_add(black_box(n), Ordering::Relaxed);
}

/// Polls a future to completion on this thread: sync listeners never wait.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

macro_rules! listeners {
    ($event:ident, async: $($name:ident)*) => {$(
        #[listener]
        async fn $name(e: &$event) { body(e.n) }
    )*};
    ($event:ident, $($name:ident)*) => {$(
        #[listener]
        fn $name(e: &$event) { body(e.n) }
    )*};
}

macro_rules! direct {
    ($event:ident, $($name:ident)*) => {
        [$({ fn $name(e: &$event) { body(e.n) } $name as fn(&$event) }),*]
    };
}

#[event]
pub struct One {
    pub n: u64,
}
listeners!(One, o0);

#[event]
pub struct Ten {
    pub n: u64,
}
listeners!(Ten, t0 t1 t2 t3 t4 t5 t6 t7 t8 t9);

#[event]
pub struct Hundred {
    pub n: u64,
}
listeners!(Hundred,
    h00 h01 h02 h03 h04 h05 h06 h07 h08 h09 h10 h11 h12 h13 h14 h15 h16 h17 h18 h19
    h20 h21 h22 h23 h24 h25 h26 h27 h28 h29 h30 h31 h32 h33 h34 h35 h36 h37 h38 h39
    h40 h41 h42 h43 h44 h45 h46 h47 h48 h49 h50 h51 h52 h53 h54 h55 h56 h57 h58 h59
    h60 h61 h62 h63 h64 h65 h66 h67 h68 h69 h70 h71 h72 h73 h74 h75 h76 h77 h78 h79
    h80 h81 h82 h83 h84 h85 h86 h87 h88 h89 h90 h91 h92 h93 h94 h95 h96 h97 h98 h99);

#[event]
pub struct AsyncOne {
    pub n: u64,
}
listeners!(AsyncOne, async: ao0);

#[event]
pub struct AsyncTen {
    pub n: u64,
}
listeners!(AsyncTen, async: at0 at1 at2 at3 at4 at5 at6 at7 at8 at9);

pub static DIRECT_ONE: [fn(&One); 1] = direct!(One, d0);
pub static DIRECT_TEN: [fn(&Ten); 10] = direct!(Ten, d0 d1 d2 d3 d4 d5 d6 d7 d8 d9);
pub static DIRECT_HUNDRED: [fn(&Hundred); 100] = direct!(Hundred,
    d00 d01 d02 d03 d04 d05 d06 d07 d08 d09 d10 d11 d12 d13 d14 d15 d16 d17 d18 d19
    d20 d21 d22 d23 d24 d25 d26 d27 d28 d29 d30 d31 d32 d33 d34 d35 d36 d37 d38 d39
    d40 d41 d42 d43 d44 d45 d46 d47 d48 d49 d50 d51 d52 d53 d54 d55 d56 d57 d58 d59
    d60 d61 d62 d63 d64 d65 d66 d67 d68 d69 d70 d71 d72 d73 d74 d75 d76 d77 d78 d79
    d80 d81 d82 d83 d84 d85 d86 d87 d88 d89 d90 d91 d92 d93 d94 d95 d96 d97 d98 d99);

/// 100 wildcard listeners on 100 patterns, one of which (`w42.*`) matches
/// the `Wild` event.
macro_rules! wildcards {
    ($($name:ident $pattern:literal)*) => {$(
        #[listener(pattern = $pattern)]
        fn $name(e: &AnyEvent) { body(e.downcast_ref::<Wild>().map_or(0, |w| w.n)) }
    )*};
}
wildcards!(
    w00 "w00.*" w01 "w01.*" w02 "w02.*" w03 "w03.*" w04 "w04.*" w05 "w05.*" w06 "w06.*" w07 "w07.*" w08 "w08.*" w09 "w09.*"
    w10 "w10.*" w11 "w11.*" w12 "w12.*" w13 "w13.*" w14 "w14.*" w15 "w15.*" w16 "w16.*" w17 "w17.*" w18 "w18.*" w19 "w19.*"
    w20 "w20.*" w21 "w21.*" w22 "w22.*" w23 "w23.*" w24 "w24.*" w25 "w25.*" w26 "w26.*" w27 "w27.*" w28 "w28.*" w29 "w29.*"
    w30 "w30.*" w31 "w31.*" w32 "w32.*" w33 "w33.*" w34 "w34.*" w35 "w35.*" w36 "w36.*" w37 "w37.*" w38 "w38.*" w39 "w39.*"
    w40 "w40.*" w41 "w41.*" w42 "w42.*" w43 "w43.*" w44 "w44.*" w45 "w45.*" w46 "w46.*" w47 "w47.*" w48 "w48.*" w49 "w49.*"
    w50 "w50.*" w51 "w51.*" w52 "w52.*" w53 "w53.*" w54 "w54.*" w55 "w55.*" w56 "w56.*" w57 "w57.*" w58 "w58.*" w59 "w59.*"
    w60 "w60.*" w61 "w61.*" w62 "w62.*" w63 "w63.*" w64 "w64.*" w65 "w65.*" w66 "w66.*" w67 "w67.*" w68 "w68.*" w69 "w69.*"
    w70 "w70.*" w71 "w71.*" w72 "w72.*" w73 "w73.*" w74 "w74.*" w75 "w75.*" w76 "w76.*" w77 "w77.*" w78 "w78.*" w79 "w79.*"
    w80 "w80.*" w81 "w81.*" w82 "w82.*" w83 "w83.*" w84 "w84.*" w85 "w85.*" w86 "w86.*" w87 "w87.*" w88 "w88.*" w89 "w89.*"
    w90 "w90.*" w91 "w91.*" w92 "w92.*" w93 "w93.*" w94 "w94.*" w95 "w95.*" w96 "w96.*" w97 "w97.*" w98 "w98.*" w99 "w99.*"
);

#[event(name = "w42.created")]
pub struct Wild {
    pub n: u64,
}
