"""A Sphinx extension of the book's build: what it does to every HTML page, and why.

Loaded by ``_config.yml`` (``sphinx: local_extensions``).

1. **Offline pages.** It drops the stylesheet link that matplotlib's ``FuncAnimation.to_jshtml()``
   writes into each interactive figure (Font Awesome 4 from a CDN, for the icons of the play buttons).
   The book's theme already ships Font Awesome, which draws the same ``fa fa-play`` icons, so the
   figure looks the same and the page asks no other host for anything. The notebooks keep the link:
   in Jupyter and Colab it is harmless, and it gives the buttons their icons where no theme does.
2. **No console errors.** It removes script tags that appear twice in a page's head. sphinx-thebe
   registers its inline configuration (``const THEBE_JS_URL = ...``) while Sphinx's HTML builder is
   already running, so with Sphinx 7.4 it reaches the page twice, and the second copy is a console
   error ("Identifier 'THEBE_JS_URL' has already been declared") on every page.
3. **Code that reads without scrolling sideways.** It puts each line of a highlighted block (code
   cells and their text outputs) in its own ``<span class="w2vc-line">`` that knows the line's
   indentation, so that ``book/_static/w2vc.css`` can wrap a line too long for its box and indent the
   continuation under the line's start, the way a printed book does. Copying a block (the copy button)
   still gives the original lines.

tests/test_browser.py fails on any remote request, console error or code block wider than its box,
so if one of these stops working (a new matplotlib template, a fixed sphinx-thebe), it says so.
"""
from __future__ import annotations

import re

# The stylesheet link of matplotlib's animation template (matplotlib/_animation_data.py, JS_INCLUDE).
_MPL_FONT_AWESOME = re.compile(
    r'<link rel="stylesheet"\s+href="https://maxcdn\.bootstrapcdn\.com/font-awesome/[0-9.]+/css/'
    r'font-awesome\.min\.css">\s*')
_HIGHLIGHT_PRE = re.compile(r'(<div class="highlight"><pre>)(.*?)(</pre></div>)', re.S)
_TAG = re.compile(r"(<[^>]*>)")
_ENTITY = re.compile(r"&[#a-zA-Z0-9]+;")


def split_lines(pre: str) -> str:
    """Wrap each line of a highlighted ``<pre>`` body in ``<span class="w2vc-line" style="--indent:N">``.

    Pygments' spans may run over several lines (a docstring): each is closed at the end of a line and
    opened again at the start of the next, so that every line span holds well-formed HTML. A body
    holding any tag other than ``<span>`` is returned unchanged.
    """
    parts = _TAG.split(pre)
    if any(p.startswith("<") and not re.match(r"</?span\b", p) for p in parts):
        return pre
    lines: list[list[str]] = [[]]
    texts: list[list[str]] = [[]]
    open_spans: list[str] = []
    for part in parts:
        if part.startswith("</span"):
            open_spans.pop()
            lines[-1].append(part)
        elif part.startswith("<span"):
            open_spans.append(part)
            lines[-1].append(part)
        else:
            pieces = part.split("\n")
            for k, piece in enumerate(pieces):
                if k:
                    lines[-1].append("</span>" * len(open_spans))
                    lines.append(list(open_spans))
                    texts.append([])
                lines[-1].append(piece)
                texts[-1].append(piece)
    if len(lines) > 1 and not "".join(_TAG.sub("", "".join(lines[-1]))):
        lines.pop()          # the block's final newline leaves an empty last line
        texts.pop()
    out = []
    for line, text in zip(lines, texts):
        plain = _ENTITY.sub("x", "".join(text))
        indent = len(plain) - len(plain.lstrip(" "))
        out.append(f'<span class="w2vc-line" style="--indent:{indent}">{"".join(line)}\n</span>')
    return "".join(out)


def _wrap_code_lines(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and '<div class="highlight"><pre>' in body:
        context["body"] = _HIGHLIGHT_PRE.sub(lambda m: m.group(1) + split_lines(m.group(2)) + m.group(3), body)


def _drop_remote_icon_font(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and "maxcdn.bootstrapcdn.com/font-awesome" in body:
        context["body"] = _MPL_FONT_AWESOME.sub("", body)


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the two copies differ only in their empty file name: None in one, "" in the other
        key = (getattr(script, "filename", script) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _drop_remote_icon_font)
    app.connect("html-page-context", _wrap_code_lines)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.add_css_file("w2vc.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
