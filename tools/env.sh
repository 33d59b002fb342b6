# Make .venv (Python 3.11) with the pinned requirements and w2vc installed in editable mode, then put
# it first on PATH. Re-running it installs only what changed.
# Sourced by tools/book.sh and tools/test.sh, and by hand: `source tools/env.sh`. It is safe to source
# in an interactive shell: it changes neither the shell's options nor its directory (the install runs
# in a subshell), and only PATH and W2VC_CACHE are exported.
_w2vc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! (
  set -euo pipefail
  cd "$_w2vc_root"
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
); then
  echo "tools/env.sh: installing into $_w2vc_root/.venv failed (see the pip output above)" >&2
  unset _w2vc_root
  return 1 2>/dev/null || exit 1
fi
export PATH="$_w2vc_root/.venv/bin:$PATH"
# Corpora and checkpoints that the chapters make are cached here, not in the user's home,
# so a clean clone builds them afresh.
export W2VC_CACHE="${W2VC_CACHE:-$_w2vc_root/data}"
unset _w2vc_root
