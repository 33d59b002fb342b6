#!/usr/bin/env bash
# Command 2: every test. Unit and parity tests, the export drift test, then nbval on every notebook.
# Extra arguments go to pytest (e.g. tools/test.sh -x -k audio).
source "$(dirname "$0")/env.sh"
python tools/export.py --check
python -m pytest -q -p no:cacheprovider tests \
  --nbval notebooks --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
  --nbval-cell-timeout 900 "$@"
