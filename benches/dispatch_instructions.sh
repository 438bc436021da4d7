#!/bin/sh
# Instructions per dispatch, counted by valgrind (callgrind): each case runs
# 1,000 and 11,000 times, and the difference over 10,000 is what one costs.
# Run from the repository root; needs valgrind.
set -eu
cargo build -q --release --example dispatch_instructions
bin=target/release/examples/dispatch_instructions
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : *//p'
}
for case in direct-1 awaited-1 polled-1 direct-10 awaited-10 polled-10 \
    direct-100 awaited-100 polled-100 async-10 queued-memory; do
    low=$(count "$case" 1000)
    high=$(count "$case" 11000)
    echo "$case $(( (high - low) / 10000 ))"
done
