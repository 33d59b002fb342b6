#!/usr/bin/env bash
# Command 2: every test. Builds the book (tools/book.sh), then the unit and parity tests, the export
# drift test, the browser test of the built pages, and nbval on every notebook.
# Extra arguments go to pytest (e.g. tools/test.sh -x -k audio).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
python tools/export.py --check
bash tools/book.sh
python -m pytest -q -p no:cacheprovider tests \
  --nbval notebooks --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
  --nbval-cell-timeout 900 "$@"
