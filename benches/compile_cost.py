#!/usr/bin/env python3
"""Compile cost of the attributes, and registry start-up with many listeners.

Generates three crates under target/bench-crates/ and measures them:

  macros    200 events and 500 listeners declared with #[event] / #[listener]
  manual    the same events and listeners, hand-written: `impl Event` blocks
            and one registration list (`inventory::submit!` of each
            ListenerDef), as a user without the macros would write them
  startup   200 events and 1,000 listeners (with the macros); its `main`
            times building the registry

`cargo check` of `macros` against `manual` (dependencies built once, then the
crate alone re-checked after a touch, RUNS times each) gives the compile-cost
ratio; the goal is <= 1.3x. Run from the repository root:

    python3 benches/compile_cost.py [RUNS]
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench-crates")
TARGET = os.path.join(OUT, "target")
EVENTS, LISTENERS, STARTUP_LISTENERS = 200, 500, 1000

CARGO_TOML = """[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
events = {{ path = "{root}" }}
inventory = "0.3"
serde = {{ version = "1", features = ["derive"] }}

[workspace]
"""


def macros_crate(listeners):
    out = ["use events::prelude::*;", "use serde::{Deserialize, Serialize};", ""]
    for e in range(EVENTS):
        out += [
            "#[event]",
            "#[derive(Serialize, Deserialize)]",
            f"pub struct Event{e} {{ pub id: u64 }}",
        ]
    for l in range(listeners):
        e = l % EVENTS
        if l % 5 == 4:
            out += [
                f'#[listener(queue = "q{l % 3}", tries = 3)]',
                f"async fn listener{l}(e: &Event{e}) {{ let _ = e.id; }}",
            ]
        else:
            out += [
                f"#[listener(priority = {l % 7})]",
                f"fn listener{l}(e: &Event{e}) {{ let _ = e.id; }}",
            ]
    return out


def manual_crate():
    p = "events::__private"
    out = [
        "#![allow(non_upper_case_globals)]",
        "use serde::{Deserialize, Serialize};",
        f"use {p}::{{Duration, ListenerDef, QueueOptions, Run, TypedCall, Target}};",
        "",
    ]
    for e in range(EVENTS):
        out += [
            "#[derive(Serialize, Deserialize)]",
            f"pub struct Event{e} {{ pub id: u64 }}",
            f'impl events::Event for Event{e} {{ const NAME: &\'static str = "Event{e}"; }}',
        ]
    # The registration list: one entry per listener.
    for l in range(LISTENERS):
        e = l % EVENTS
        target = f"{p}::event_target::<Event{e}>()"
        if l % 5 == 4:
            out += [
                f"async fn listener{l}(e: &Event{e}) {{ let _ = e.id; }}",
                f"fn job{l}(_: &str, json: &str) -> Result<{p}::BoxFuture<'static, {p}::Outcome>, serde_json_error::Error> {{",
                f"    let e: Event{e} = {p}::serde_json::from_str(json)?;",
                f"    Ok(Box::pin(async move {{ listener{l}(&e).await; Ok(events::Flow::Continue) }}))",
                "}",
                f"const CODEC{l}: {p}::Codec<Event{e}> = {p}::codec::<Event{e}>();",
                "inventory::submit! { ListenerDef {",
                f'    name: "manual::listener{l}", target: {target}, priority: 0, when: None,',
                f'    run: Run::Queued {{ options: QueueOptions::__new("q{l % 3}", 3, &[], Duration::ZERO, None),',
                f"                       job: job{l}, encode: CODEC{l}.encode, is_async: true }},",
                f'    on_failure: None, file: file!(), line: {l},',
                "} }",
            ]
        else:
            out += [
                f"fn listener{l}(e: &Event{e}) {{ let _ = e.id; }}",
                "inventory::submit! { ListenerDef {",
                f'    name: "manual::listener{l}", target: {target}, priority: {l % 7}, when: None,',
                f"    run: Run::Typed(TypedCall::unit::<Event{e}>(listener{l})),",
                f'    on_failure: None, file: file!(), line: {l},',
                "} }",
            ]
    out.insert(1, f"mod serde_json_error {{ pub use {p}::serde_json::Error; }}")
    return out


STARTUP_MAIN = """
fn main() {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..21 {
        let start = std::time::Instant::now();
        let registry = events::__private::build_registry();
        times.push(start.elapsed());
        count = registry.listeners().len();
        std::hint::black_box(registry);
    }
    times.sort();
    println!("registry build, {} listeners, {} events: median {:?} (min {:?}, max {:?})",
             count, events::registry().events().len(), times[10], times[0], times[20]);
}
"""


def write_crate(name, lines, main):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Cargo.toml"), "w") as f:
        f.write(CARGO_TOML.format(name=name, root=ROOT))
    with open(os.path.join(path, "src", "main.rs"), "w") as f:
        f.write("\n".join(lines) + "\n" + main)
    return path


def cargo(path, *args):
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(["cargo", *args, "-q"], cwd=path, env=env, check=True)


def timed_check(path, runs):
    cargo(path, "check")  # dependencies, once
    times = []
    for _ in range(runs):
        os.utime(os.path.join(path, "src", "main.rs"))
        start = time.perf_counter()
        cargo(path, "check")
        times.append(time.perf_counter() - start)
    return times


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    shutil.rmtree(OUT, ignore_errors=True)
    empty_main = "\nfn main() {}\n"
    macros = write_crate("macros", macros_crate(LISTENERS), empty_main)
    manual = write_crate("manual", manual_crate(), empty_main)
    startup = write_crate("startup", macros_crate(STARTUP_LISTENERS), STARTUP_MAIN)

    results = {}
    for name, path in [("manual", manual), ("macros", macros)]:
        t = timed_check(path, runs)
        results[name] = t
        print(f"cargo check, {name:<6} ({EVENTS} events, {LISTENERS} listeners): "
              f"median {statistics.median(t):.2f}s (min {min(t):.2f}, max {max(t):.2f})")
    ratio = statistics.median(results["macros"]) / statistics.median(results["manual"])
    print(f"ratio macros / manual: {ratio:.2f}x (goal <= 1.3x)")

    cargo(startup, "build", "--release")
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(["cargo", "run", "-q", "--release"], cwd=startup, env=env, check=True)


if __name__ == "__main__":
    main()
