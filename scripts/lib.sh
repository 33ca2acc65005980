# shellcheck shell=bash
# Shared helpers for scripts/*. Sourced, never executed.
#
# Everything the project installs for itself lives under .tools/ at the repo
# root, so a fresh clone (which is what CI gets) can rebuild it from scratch and
# `rm -rf .tools` is always a safe reset.

# Resolve the repo root from this file's location, not from $PWD, so the
# scripts work no matter where they are called from.
ORCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
ORCH_TOOLS="$ORCH_ROOT/.tools"
ORCH_VENV="$ORCH_TOOLS/venv"

die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# ensure_venv: make sure $ORCH_VENV is a working venv.
#
# A venv hard-codes the interpreter it was made from; if that interpreter went
# away (pyenv upgrade, machine rebuilt under a kept work tree) the venv is dead
# weight, so we test that its python actually runs and rebuild it if not.
# Creation is serialized with flock because `scripts/just` and
# `scripts/setup-python` may both race to create it (e.g. parallel CI jobs).
ensure_venv() {
    if "$ORCH_VENV/bin/python" -c '' 2>/dev/null; then
        return 0
    fi
    local python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 ||
        die "'$python' not found: install Python >= 3.9 (e.g. apt-get install python3 python3-venv) or set PYTHON=/path/to/python3"
    mkdir -p "$ORCH_TOOLS"
    (
        # Without flock (non-Linux) we just skip the lock; the race is rare.
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$ORCH_TOOLS/.venv.lock"
            flock 9
        fi
        # Re-check under the lock: another process may have just built it.
        if ! "$ORCH_VENV/bin/python" -c '' 2>/dev/null; then
            note "creating venv $ORCH_VENV with $("$python" --version 2>&1)"
            "$python" -m venv --clear "$ORCH_VENV" ||
                die "'$python -m venv' failed: on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"
        fi
    )
}
