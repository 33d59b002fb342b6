#!/usr/bin/env bash
# Refresh the third-party files that the built book serves from its own folder (vendor/), so that a page
# opened from disk makes no request to any other host. Run by hand when a version changes; the build
# (tools/book.sh, through html_static_path in _config.yml) only copies what is committed.
# Needs npm (the registry's ordinary client). Versions and checksums are written down in vendor/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX=3.2.2
TARBALL_SHA256=1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$MATHJAX" >/dev/null)
echo "$TARBALL_SHA256  $tmp/mathjax-$MATHJAX.tgz" | sha256sum -c --quiet
tar -xzf "$tmp/mathjax-$MATHJAX.tgz" -C "$tmp"
mkdir -p vendor/mathjax
# tex-svg-full.js: the TeX input with every extension built in and SVG output, which needs no web
# fonts and loads no further component at run time.
cp "$tmp/package/es5/tex-svg-full.js" "$tmp/package/LICENSE" vendor/mathjax/
sha256sum vendor/mathjax/tex-svg-full.js
