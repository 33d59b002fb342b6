#!/usr/bin/env bash
# Command 1: install everything into .venv and build the book into _build/html, warnings as errors.
# The notebooks are not re-executed: they carry the outputs that nbval checks.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
rm -rf _build/html
jupyter-book build . --warningiserror --keep-going --quiet
echo "The book: file://$PWD/_build/html/index.html"
