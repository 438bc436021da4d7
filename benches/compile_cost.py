#!/usr/bin/env python3
"""Compile cost of the attributes, and registry start-up with many listeners.

Generates three crates under target/bench-crates/ and measures them:

  macros    200 events and 500 listeners declared with #[event] / #[listener]
  manual    the same events and listeners, hand-written: `impl Event` blocks
            and one registration list (`inventory::submit!` of each
            ListenerDef), as a user without the macros would write them
  startup   200 events and 1,000 listeners (with the macros); its `main`
            times building the registry

`cargo check` of `macros` against `manual` gives the compile-cost ratio (goal
<= 1.3x), measured two ways, RUNS times each, with dependencies built once:

  fresh     the crate checked from scratch (`cargo clean -p` first): all the
            work the compiler does for it
  recheck   the crate re-checked after a touch, with incremental compilation:
            proc macros run again, while most other results come from the
            cache, so this is the edit-and-check loop and mostly shows
            macro expansion

Each crate is timed as wall and CPU time (user + system), the two crates
taking turns so load on the machine falls on both alike. With
`--instructions`, valgrind also counts the instructions rustc executes, for
a fresh check (without incremental compilation) and for a re-check over the
incremental cache; counts repeat where times do not.

Run from the repository root:

    python3 benches/compile_cost.py [RUNS] [--instructions] [--optimized-macros]

`--optimized-macros` adds `[profile.dev.build-override] opt-level = 3` to
both crates: every proc macro, serde's included, then runs optimized.
"""

import os
import resource
import shlex
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
        f"use {p}::{{Duration, ListenerDef, QueueOptions, Run, TypedCall}};",
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


# With --optimized-macros, both crates build every proc macro (serde's and
# events') and their dependencies optimized, as serde's and sqlx's documents
# suggest for projects that feel macro expansion.
OPTIMIZED_MACROS = """
[profile.dev.build-override]
opt-level = 3
"""


def write_crate(name, lines, main, optimized_macros=False):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Cargo.toml"), "w") as f:
        f.write(CARGO_TOML.format(name=name, root=ROOT))
        if optimized_macros:
            f.write(OPTIMIZED_MACROS)
    with open(os.path.join(path, "src", "main.rs"), "w") as f:
        f.write("\n".join(lines) + "\n" + main)
    return path


def cargo(path, *args, capture=False):
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    return subprocess.run(["cargo", *args], cwd=path, env=env, check=True,
                          capture_output=capture, text=True)


def one_check(path, fresh):
    """Wall and CPU seconds of one `cargo check` of the crate at `path`."""
    if fresh:
        cargo(path, "clean", "-q", "-p", os.path.basename(path))
    else:
        os.utime(os.path.join(path, "src", "main.rs"))
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cargo(path, "check", "-q")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)


def instructions(path, incremental):
    """Instructions rustc executes checking the crate, counted by valgrind:
    repeatable where times are not. Fresh: from scratch, without incremental
    compilation. Incremental: the same command run again over the cache its
    first run left, as a re-check after a touch."""
    name = os.path.basename(path)
    cargo(path, "clean", "-q", "-p", name)
    out = cargo(path, "check", "-v", capture=True).stderr
    line = next(l for l in out.splitlines() if "Running `" in l and f"--crate-name {name} " in l)
    words = shlex.split(line.split("Running `", 1)[1].rstrip("`"))
    argv = []
    for word in words:
        if word.startswith("incremental=") and argv and argv[-1] == "-C":
            if incremental:
                argv.append(word)
            else:
                argv.pop()
        elif not word.startswith(("--error-format", "--json")):
            argv.append(word)
    if incremental:
        subprocess.run(argv, cwd=path, capture_output=True, check=True)
    run = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                          "--cachegrind-out-file=/dev/null", *argv],
                         cwd=path, capture_output=True, text=True, check=True)
    refs = next(l for l in run.stderr.splitlines() if "I   refs" in l or "I refs" in l)
    return int(refs.split()[-1].replace(",", ""))


def summary(values, unit="s"):
    return (f"median {statistics.median(values):.2f}{unit} "
            f"(min {min(values):.2f}, max {max(values):.2f})")


def main():
    runs = int(next((a for a in sys.argv[1:] if a.isdigit()), 10))
    count_instructions = "--instructions" in sys.argv
    optimized = "--optimized-macros" in sys.argv
    shutil.rmtree(OUT, ignore_errors=True)
    empty_main = "\nfn main() {}\n"
    crates = {
        "manual": write_crate("manual", manual_crate(), empty_main, optimized),
        "macros": write_crate("macros", macros_crate(LISTENERS), empty_main, optimized),
    }
    startup = write_crate("startup", macros_crate(STARTUP_LISTENERS), STARTUP_MAIN)
    for path in crates.values():
        cargo(path, "check", "-q")  # dependencies, once

    print(f"cargo check of {EVENTS} events and {LISTENERS} listeners, {runs} runs of each, "
          "the two crates taking turns")
    for mode in ["fresh", "recheck"]:
        wall = {name: [] for name in crates}
        cpu = {name: [] for name in crates}
        for _ in range(runs):
            for name, path in crates.items():
                w, c = one_check(path, fresh=(mode == "fresh"))
                wall[name].append(w)
                cpu[name].append(c)
        for name in crates:
            print(f"  {mode:<7} {name:<6} wall {summary(wall[name])}, cpu {summary(cpu[name])}")
        ratio_wall = statistics.median(wall["macros"]) / statistics.median(wall["manual"])
        ratio_cpu = statistics.median(cpu["macros"]) / statistics.median(cpu["manual"])
        print(f"  {mode:<7} ratio macros / manual: wall {ratio_wall:.2f}x, cpu {ratio_cpu:.2f}x "
              "(goal <= 1.3x)")

    if count_instructions:
        for mode, incremental in [("fresh", False), ("recheck", True)]:
            counts = {name: instructions(path, incremental) for name, path in crates.items()}
            print(f"  {mode:<7} instructions: manual {counts['manual']:,}, "
                  f"macros {counts['macros']:,}, ratio {counts['macros'] / counts['manual']:.3f}x")

    cargo(startup, "build", "-q", "--release")
    cargo(startup, "run", "-q", "--release")


if __name__ == "__main__":
    main()
