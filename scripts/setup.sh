#!/usr/bin/env bash
# One-command set-up: a virtual environment with speckstream (editable, Cython extensions built),
# its test tools, and sinabs for the model examples.
#
# sinabs is installed with --no-deps because it depends on "samna", whose PyPI release is a shim that
# runs 'pip install' from SynSense's index when it is imported. speckstream never imports samna unless
# the real library is installed (see speckstream.runtime.find_samna).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
# constraints.txt pins torch to the CPU build these machines have on disk (the package itself keeps a range)
"${PIP[@]}" install -c constraints.txt -e ".[dev]"
"${PIP[@]}" install -c constraints.txt --no-deps "sinabs==3.1.3"
if "$VENV/bin/python" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('samna') is None)"; then
    echo "note: a samna package is installed; speckstream checks it is the real library before importing it"
fi
"$VENV/bin/python" -c "import speckstream.codec as c, speckstream.sim as s; print('speckstream ready: codec', c.IMPLEMENTATION, '| simulator engine', s.ENGINE)"
