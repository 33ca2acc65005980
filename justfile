# Task runner for orch. Run through `scripts/just`, which installs the pinned
# `just` on first use: `scripts/just test`, `scripts/just --list`.

set shell := ["bash", "-euo", "pipefail", "-c"]

root := justfile_directory()
venv := root / ".tools/venv"
mdbook_version := "0.5.4"

# Exported once here so every recipe (and the terraform/moto/checkov processes
# the tests start) sees the same tool setup:
# - terraform installs providers from the local mirror via this CLI config
#   (written by scripts/setup-terraform), never from the network;
# - the tests find moto_server and checkov in the project venv;
# - the venv is appended, not prepended, to PATH so its python never shadows
#   the one the user chose.
export TF_CLI_CONFIG_FILE := root / ".tools/terraformrc"
export ORCH_TOOLS_VENV := venv
export PATH := env("PATH") + ":" + venv / "bin"

# List the recipes.
[private]
default:
    @{{ just_executable() }} --justfile {{ quote(justfile()) }} --list

# Install the tools the tests need: terraform CLI config, moto, checkov into .tools/; Chromium
# (Debian package) for the HTML report test.
setup:
    scripts/setup-terraform
    scripts/setup-python
    scripts/setup-chromium

# Release build of the orch binary.
build:
    cargo build --release

# Fail if any Rust source is not rustfmt-formatted.
fmt-check:
    cargo fmt --all -- --check

# Clippy on everything, warnings are errors.
lint:
    cargo clippy --all-targets -- -D warnings

# What CI runs: tools, formatting, lints, then the whole test suite: every test `cargo test
# --release` runs, with the end-to-end files in lanes side by side (see scripts/test). --release
# because the end-to-end tests run the real binary (and terraform against moto) many times; on 2
# cores an optimized build pays for itself.
test: setup fmt-check lint
    scripts/test

# Benchmarks: fleet scale (benches/fleet.rs), then the executor against a fake terraform and
# real terraform + the emulator (benches/executor.rs; needs `scripts/just setup` first), then a
# 1,000-node plan split over 4 shards (benches/shards.rs), then the layouts, import and audit
# (below).
bench: && bench-layouts bench-import bench-audit
    cargo bench --bench fleet && cargo bench --bench executor && cargo bench --bench shards

# per-node vs stacks on fleets of 20, 200 and 1,000 nodes, plan, apply and re-plan with real
# terraform against the emulator (benches/layouts.rs). Long: about 3,000 CPU-seconds, and the
# applies wait on the provider (a 100-key stack applies in about 5 minutes); for a short run,
# ORCH_BENCH_SIZES=20 (see the file's header for the other knobs).
bench-layouts:
    cargo bench --bench layouts

# `orch import` against the emulator (benches/import.rs): discover of 1,000 keys at several
# --concurrency values, then import apply of 200 keys in the stacks layout and the plan after it.
# Making the estates takes a few minutes, the apply longer; for a short run,
# ORCH_BENCH_DISCOVER_KEYS=100 ORCH_BENCH_IMPORT_KEYS=20 (see the file's header for the others).
bench-import:
    cargo bench --bench import

# `orch audit` of 1,000 keys in one account/region against the emulator (benches/audit.rs): wall
# time, CPU, API calls per key, and a Markdown report cut to GitHub's limit. Making the keys takes
# a few minutes; for a short run, ORCH_BENCH_AUDIT_KEYS=100 (see the file's header).
bench-audit:
    cargo bench --bench audit

# The reference book (book.toml; pages in docs/, listed in docs/SUMMARY.md) built into
# target/book/. Installs the pinned mdbook into .tools/mdbook on first use (from crates.io; only
# the search feature, as the book is only built here, never served). Not part of `test`:
# tests/docs.rs checks the pages' examples and links. Fails on any warning of mdbook.
docs:
    test -x .tools/mdbook/bin/mdbook && .tools/mdbook/bin/mdbook --version | grep -qx 'mdbook v{{ mdbook_version }}' || \
        cargo install mdbook --locked --version {{ mdbook_version }} --root .tools/mdbook --no-default-features --features search
    out=$(.tools/mdbook/bin/mdbook build 2>&1) || { echo "$out" >&2; exit 1; }; echo "$out"; \
        if grep -q 'WARN' <<<"$out"; then echo "mdbook warned: fix the pages" >&2; exit 1; fi

# orch's main job on the shipped live/ tree: validate it, show the DAG, and plan every node with
# real terraform against the local AWS emulator (the `sandbox` profile).
demo: setup build
    target/release/orch --live live validate
    target/release/orch --live live graph
    scripts/sandbox target/release/orch --live live --profile sandbox plan --all

# cargo-fuzz runs without a sanitizer, so it works on the stable toolchain: safe Rust needs none
# to catch what matters here (panics, stack overflows, inputs that take over 10 s, runaway memory).
# Each target keeps its corpus in fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/); a
# failing input is saved under fuzz/artifacts/<target>/ and the recipe fails. Inputs are full
# length from the start (-len_control=0): a generated tree needs a few KB to have several nodes.

# Fuzz the loader for MINUTES (default 10, or FUZZ_MINUTES), half on `files`, half on `trees`.
fuzz minutes=env("FUZZ_MINUTES", "10"):
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd fuzz && cargo fuzz build --sanitizer none
    cd fuzz && for target in files:65536 trees:8192; do \
        name=${target%:*}; mkdir -p corpus/$name; \
        seeds=$(ls -d seeds/$name 2>/dev/null || true); \
        cargo fuzz run --sanitizer none $name corpus/$name $seeds -- \
            -max_total_time=$(( {{ minutes }} * 30 + 1 )) -timeout=10 -rss_limit_mb=2048 \
            -max_len=${target#*:} -len_control=0 -close_fd_mask=3 -print_final_stats=1; \
    done

# The module graph against layers.txt: no cycle, every use down the layers (tests/layers.rs).
layers:
    cargo test --release --test layers
