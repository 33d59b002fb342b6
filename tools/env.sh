# Sourced by tools/book.sh and tools/test.sh: make .venv (Python 3.11) with the pinned requirements
# and w2vc installed in editable mode. Re-running it installs only what changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.w2vc-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  cp requirements.txt "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# Corpora and checkpoints that the chapters make are cached here, not in the user's home,
# so a clean clone builds them afresh.
export W2VC_CACHE="${W2VC_CACHE:-$PWD/data}"
