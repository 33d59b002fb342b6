"""The built book as a reader meets it: every page of ``_build/html`` opened in headless Chromium, offline.

This test builds nothing: ``tools/test.sh`` builds the book first (``bash tools/book.sh``). For every page
of the table of contents, and the search and index pages, it asserts that

- no raw TeX is left in the visible text, and the number of formulas MathJax rendered equals the number
  of formulas in the page's source (the notebook or Markdown file), none of them a TeX error;
- every image loaded (natural width > 0);
- the browser console shows no error;
- no request goes anywhere but to files of the book itself (any other URL fails, named);
- every ipywidget output has its stored state and rendered (the book's own interactive figures are
  matplotlib ``to_jshtml`` sliders, which need neither a kernel nor a widget manager);
- every interactive figure in the source is on the page and responds: moving its slider changes the
  frame shown;
- worked solutions are collapsed when the page opens;
- no code block, input or output, is wider than its box by more than ``OVERFLOW_LIMIT_PX``
  (readers should not scroll sideways to read a line: shorten or wrap it).

It saves a screenshot of every page, whole and as wide as the window (a long page in numbered parts,
``page__part1.png``, ...), and of every interactive figure after its slider moved, under
``_build/screenshots/``, and prints a summary line (pages, formulas rendered, images, figures moved).

It needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``)
and ``selenium``. Without them, or without a built book, the tests skip and say why;
``W2VC_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) turns every such skip into a failure, so CI never
skips them. Chromium is started so that it reaches no network service of its own, and every host name
resolves to nothing: a page that asks for a remote file is caught, and nothing leaves the machine.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
REQUIRE = os.environ.get("W2VC_REQUIRE_BROWSER") == "1"
WINDOW = (1280, 1000)     # a laptop's browser window, in CSS pixels
OVERFLOW_LIMIT_PX = 0     # how much wider than its box a code block or a displayed formula may be: not at all
CODE_LINE_FITS = 95       # characters of code that show whole in a WINDOW-wide window; longer lines wrap
SHOT_PART_HEIGHT = 16000  # px; a longer page is saved as numbered parts (page__part1.png, ...), none cut


# ---------------------------------------------------------------------------------------------------
# What the sources say a page should show
# ---------------------------------------------------------------------------------------------------

def _toc_pages() -> list[tuple[str, Path]]:
    """``(page, source)`` for the root and every file of ``_toc.yml``: ``book/preface``, ``book/preface.md``."""
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"^root:\s*(\S+)", toc, re.M) + re.findall(r"^\s+- file:\s*(\S+)", toc, re.M)
    pages = []
    for name in names:
        for suffix in (".ipynb", ".md"):
            if (ROOT / (name + suffix)).exists():
                pages.append((name, ROOT / (name + suffix)))
                break
        else:
            raise AssertionError(f"_toc.yml lists {name}, which has no .ipynb or .md file")
    return pages


def _myst_extensions() -> set[str]:
    text = (ROOT / "_config.yml").read_text()
    m = re.search(r"myst_enable_extensions:\s*\[([^\]]*)\]", text)
    found = {e.strip().strip("'\"") for e in m.group(1).split(",")} if m else set()
    # jupyter-book's defaults, which _config.yml can extend
    return found | {"colon_fence", "dollarmath", "linkify", "substitution", "tasklist"}


def _markdown_of(source: Path) -> list[str]:
    """The Markdown a page is made of: a .md file, or a notebook's Markdown cells and Markdown outputs."""
    if source.suffix == ".md":
        return [source.read_text(encoding="utf-8")]
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    parts = []
    for cell in cells:
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            parts.append(text)
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md:
                parts.append(md if isinstance(md, str) else "".join(md))
    return parts


_DIRECTIVE_WITH_BODY = re.compile(r"^\{([a-zA-Z0-9_:-]+)\}")


def count_source_formulas(source: Path) -> int:
    """How many formulas the page's source holds: ``$...$``, ``$$...$$``, amsmath environments,
    ``{math}`` roles and directives, also inside directives (exercises, admonitions)."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    md = create_md_parser(MdParserConfig(enable_extensions=_myst_extensions()), RendererHTML)

    def body(content: str) -> str:
        lines = content.splitlines()
        if lines and lines[0].strip() == "---":        # a YAML block of options
            end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
            lines = lines[end + 1:]
        while lines and re.match(r"^:[\w-]+:", lines[0]):
            lines = lines[1:]
        return "\n".join(lines)

    def count(tokens) -> int:
        n = 0
        for tok in tokens:
            if tok.type in ("math_inline", "math_block", "math_block_label", "amsmath", "math_inline_double"):
                n += 1
            elif tok.type == "myst_role" and tok.meta.get("name") == "math":
                n += 1
            elif tok.type in ("fence", "colon_fence"):
                m = _DIRECTIVE_WITH_BODY.match(tok.info.strip())
                if m and m.group(1) == "math":
                    # Sphinx sets each paragraph of a math directive as its own formula
                    n += len([b for b in re.split(r"\n\s*\n", body(tok.content)) if b.strip()])
                elif m and m.group(1) not in ("code-cell", "code-block", "code", "raw", "glossary"):
                    n += count(md.parse(body(tok.content)))
            if tok.children:
                n += count(tok.children)
        return n

    return sum(count(md.parse(text)) for text in _markdown_of(source))


def count_source_figures(source: Path) -> int:
    """How many interactive figures (matplotlib ``to_jshtml`` outputs) a notebook's outputs hold."""
    if source.suffix != ".ipynb":
        return 0
    n = 0
    for cell in json.loads(source.read_text(encoding="utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            html = out.get("data", {}).get("text/html", "")
            html = html if isinstance(html, str) else "".join(html)
            n += len(re.findall(r'<div class="animation">', html))
    return n


def count_page_formulas(page_file: Path) -> int:
    """How many formulas Sphinx wrote into the page for MathJax: ``\\(...\\)`` and ``\\[...\\]`` in
    elements of class ``math``."""
    from html.parser import HTMLParser

    class Math(HTMLParser):
        def __init__(self):
            super().__init__()
            self.depth, self.text, self.n = 0, [], 0

        def handle_starttag(self, tag, attrs):
            classes = (dict(attrs).get("class") or "").split()
            if self.depth:
                self.depth += 1
            elif tag in ("span", "div") and "math" in classes:
                self.depth = 1

        def handle_endtag(self, tag):
            if self.depth:
                self.depth -= 1
                if not self.depth:
                    tex = "".join(self.text)
                    self.n += len(re.findall(r"(?<!\\)\\[(\[]", tex))
                    self.text = []

        def handle_data(self, data):
            if self.depth:
                self.text.append(data)

    parser = Math()
    parser.feed(page_file.read_text(encoding="utf-8"))
    return parser.n


# ---------------------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------------------

def _unavailable(why: str):
    if REQUIRE:
        pytest.fail(f"{why} (W2VC_REQUIRE_BROWSER=1 is set: the browser test must run here)", pytrace=False)
    pytest.skip(why)


@dataclass
class Summary:
    pages: int = 0
    formulas: int = 0
    images: int = 0
    figures_moved: int = 0
    figures: int = 0
    solutions: int = 0
    screenshots: int = 0
    failed: list = field(default_factory=list)

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(
            f"browser: {self.pages} pages opened offline in headless Chromium, {self.formulas} formulas "
            f"rendered, {self.images} images loaded, {self.figures_moved}/{self.figures} interactive figures "
            f"moved, {self.solutions} worked solutions collapsed, {self.screenshots} screenshots in "
            f"{SHOTS.relative_to(ROOT)}/" + (f"; pages with failures: {', '.join(self.failed)}" if self.failed else ""))


def chromium_options(user_data_dir: str):
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                "--metrics-recording-only", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                f"--user-data-dir={user_data_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                # Every host name resolves to nothing: a remote request fails here (and is reported below)
                # instead of leaving the machine.
                "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return opts


@pytest.fixture(scope="module")
def browser(request):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed: pip install -r requirements.txt")
    chromium = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    driver_path = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        _unavailable(f"no headless Chromium here ({chromium}, {driver_path}): "
                     "apt-get install chromium chromium-driver (Debian), or set CHROMIUM and CHROMEDRIVER")
    if not (HTML / "index.html").exists():
        _unavailable(f"the book is not built ({HTML.relative_to(ROOT)}/index.html is missing): bash tools/book.sh")
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    profile = tempfile.mkdtemp(prefix="w2vc-chromium-")
    driver = webdriver.Chrome(options=chromium_options(profile), service=Service(driver_path))
    driver.set_script_timeout(120)
    driver.set_page_load_timeout(120)
    summary = Summary()
    request.config.pluginmanager.register(summary, "w2vc-browser-summary")
    yield driver, summary
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


_WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done('typeset'), (e) => done('error: ' + e));
} else { done(window.MathJax && window.MathJax.startup === undefined && !MathJax.version ? 'not loaded' : 'none'); }
"""

_MATH_STATE = """
const out = {elements: 0, rendered: 0, errors: [], unrendered: []};
for (const el of document.querySelectorAll('span.math, div.math')) {
  out.elements += 1;
  const boxes = el.querySelectorAll('mjx-container');
  const drawn = [...boxes].filter(b => b.querySelector('svg') && b.getBoundingClientRect().width >= 0);
  out.rendered += drawn.length;
  for (const e of el.querySelectorAll('mjx-merror, [data-mjx-error]'))
    out.errors.push((e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120));
  if (!boxes.length) out.unrendered.push(el.textContent.slice(0, 80));
}
return out;
"""

_VISIBLE_TEXT = """
const root = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const clone = root.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight').forEach(e => e.remove());
return clone.textContent;
"""

_RAW_TEX = re.compile(r"\\[()\[\]]|\$\$|\\(?:frac|mathbf|mathrm|mathcal|text|sum|prod|left|right|begin|end|"
                      r"alpha|beta|gamma|tau|theta|sigma|log|exp|cdot|times|in|le|ge|sqrt|hat|tilde|bar)\b"
                      r"|\$[^$\s][^$\n]{0,200}?\$")

_IMAGES = """
return [...document.images].map(img => ({src: (img.currentSrc || img.src || '').slice(0, 100),
  ok: img.complete && img.naturalWidth > 0, id: img.id}));
"""

_WIDGETS = """
const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
  .map(s => { try { return JSON.parse(s.textContent).model_id; } catch (e) { return 'unreadable'; } });
const stateTag = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
let stored = [];
if (stateTag) { try { stored = Object.keys(JSON.parse(stateTag.textContent).state || {}); } catch (e) {} }
return {views: views, stored: stored, rendered: document.querySelectorAll('.jupyter-widgets, .widget-area .p-Widget, .lm-Widget').length};
"""

_SOLUTIONS = """
const out = [];
for (const el of document.querySelectorAll('.solution')) {
  const title = (el.querySelector('.admonition-title') || el).textContent.trim().slice(0, 60);
  const body = [...el.children].filter(c => !c.classList.contains('admonition-title'));
  const visible = body.some(c => c.offsetParent !== null && c.getBoundingClientRect().height > 0);
  out.push({title: title, dropdown: el.classList.contains('dropdown'), visible: visible});
}
return out;
"""

_OPEN_EVERYTHING = """
for (const d of document.querySelectorAll('details')) d.open = true;
for (const b of document.querySelectorAll('button.toggle-button')) {
  if (!b.classList.contains('toggle-button-hidden')) continue;
  b.click();
}
for (const el of document.querySelectorAll('.admonition.dropdown button.toggle-button')) {
  const target = document.getElementById(el.dataset.target ? el.dataset.target.slice(1) : '');
  if (target && target.classList.contains('toggle-hidden')) el.click();
}
for (const el of document.querySelectorAll('.toggle-hidden')) el.classList.remove('toggle-hidden');
"""

_OVERFLOW = """
const out = [];
for (const pre of document.querySelectorAll('div.highlight pre, .cell_output pre, .output pre')) {
  if (!pre.offsetParent) continue;
  const box = pre.clientWidth, need = pre.scrollWidth;
  if (need - box > arguments[0]) {
    const lines = pre.textContent.split('\\n');
    const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
    out.push({over: need - box, box: box, longest: longest.slice(0, 140), chars: longest.length,
              where: pre.closest('.cell_output, .output') ? 'output' : 'code'});
  }
}
return out;
"""

_FIGURES = """
return [...document.querySelectorAll('div.animation')].map((div, i) => {
  const img = div.querySelector('img'), slider = div.querySelector('input[type=range]');
  return {i: i, img: img ? img.id : null, slider: slider ? slider.id : null,
          max: slider ? parseInt(slider.max) : -1, src: img ? img.src.length : 0};
});
"""


def _requests(driver) -> list[str]:
    """Every URL the page asked for since the last call (Chromium's own internal pages left out)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if params.get("documentURL", "").startswith(("chrome:", "devtools:", "chrome-untrusted:")):
            continue
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            urls.append(params["url"])
    return urls


def _outside(url: str, root: Path) -> bool:
    """True for a URL that is not a file of the built book under ``root`` (nor a data/blob/about URL)."""
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about"):
        return False
    if parsed.scheme != "file":
        return True
    return not Path(unquote(parsed.path)).resolve().is_relative_to(root.resolve())


_PAGE_SIZE = """
const doc = document.documentElement;
return {window: window.innerWidth, width: doc.clientWidth,
        height: Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0)};
"""


_ARTICLE_BOX = """
window.scrollTo(0, 0);
const box = (document.querySelector('article.bd-article') || document.body).getBoundingClientRect();
return [Math.max(0, Math.ceil(box.left)), Math.max(0, Math.ceil(box.top)),
        Math.min(window.innerWidth, Math.floor(box.right)), Math.min(window.innerHeight, Math.floor(box.bottom))];
"""
SHOT_DIFF_LIMIT = 0.001   # share of the article's pixels in the reader's first window that the page shot may change


def _differing_share(shot: bytes, window: bytes, box: list[int]) -> float:
    """The share of pixels inside ``box`` (left, top, right, bottom) that differ between two PNGs."""
    import io

    from PIL import Image, ImageChops

    a, b = (Image.open(io.BytesIO(data)).convert("RGB").crop(box) for data in (shot, window))
    changed = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 16 else 0)
    return changed.histogram()[255] / max(1, a.width * a.height)


def _png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG, from its IHDR header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "Chromium's screenshot is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _screenshot(driver, path: Path) -> tuple[list[Path], list[str]]:
    """Save the whole page as a reader sees it in a ``WINDOW``-wide window: ``path``, or, for a page taller
    than ``SHOT_PART_HEIGHT``, ``path``'s stem + ``__part1.png``, ``__part2.png``, ... that together hold all
    of it. Returns the files saved, and what is wrong with them: their width is not the window's, they miss
    part of the page, or the article at the top of the page differs from what the reader's window shows.

    The window is made as tall as the document for the capture (``Emulation.setDeviceMetricsOverride``)
    and given back after. ``captureBeyondViewport`` is not used: it re-lays out the page at another size,
    and its shots came out shifted sideways (chapter 3 lost 500 px on the left)."""
    box = driver.execute_script(_ARTICLE_BOX)         # scrolled to the top, as a reader opens the page
    window = base64.b64decode(driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"])
    before = driver.execute_script(_PAGE_SIZE)
    width, height = before["width"], before["height"]
    try:
        for _ in range(3):          # the taller window may make the document taller (100vh boxes): follow it
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            now = driver.execute_script(_PAGE_SIZE)
            if now["height"] <= height:
                break
            height = now["height"]
        n = -(-height // SHOT_PART_HEIGHT)
        paths = [path] if n == 1 else [path.with_name(f"{path.stem}__part{i + 1}.png") for i in range(n)]
        sizes = []
        for i, part in enumerate(paths):
            top = i * SHOT_PART_HEIGHT
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "clip": {"x": 0, "y": top, "width": width,
                                          "height": min(SHOT_PART_HEIGHT, height - top), "scale": 1}})
            data = base64.b64decode(shot["data"])
            part.write_bytes(data)
            sizes.append(_png_size(data))
            if i == 0:
                first = data
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    problems = []
    if any(w != before["window"] for w, _ in sizes):
        problems.append(f"page screenshot {[w for w, _ in sizes]} px wide, the window {before['window']} px")
    if sum(h for _, h in sizes) != height or height < before["height"]:
        problems.append(f"page screenshot parts {[h for _, h in sizes]} px tall, the page {before['height']} px "
                        f"({height} px in the tall window)")
    elif box[2] > box[0] and box[3] > box[1]:
        share = _differing_share(first, window, box)
        if share > SHOT_DIFF_LIMIT:
            problems.append(f"the page screenshot's top differs from the reader's window in {share:.1%} of the "
                            f"article's pixels (box {box}, limit {SHOT_DIFF_LIMIT:.1%}): the capture shifted or "
                            "re-laid out the page")
    return paths, problems


def _move(driver, fig, shot: Path | None = None) -> tuple[bool, str]:
    """Move the figure's slider with the keyboard (End, then Home); True if the frame shown changed.
    At the end of the slider, a screenshot of the figure goes to ``shot``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    img = driver.find_element("id", fig["img"])
    slider = driver.find_element("id", fig["slider"])
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
    first = img.get_attribute("src")
    ActionChains(driver).move_to_element(slider).click().send_keys(Keys.END).perform()
    try:
        WebDriverWait(driver, 5).until(lambda d: img.get_attribute("src") != first)
    except Exception:
        return False, f"slider at {slider.get_attribute('value')} of {fig['max']}, the image did not change"
    if shot is not None:
        figure = img.find_element("xpath", "./ancestor::div[contains(@class, 'animation')]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", figure)
        figure.screenshot(str(shot))
    ActionChains(driver).send_keys(Keys.HOME).perform()
    try:
        WebDriverWait(driver, 5).until(lambda d: img.get_attribute("src") == first)
    except Exception:
        return False, "back at the start of the slider, the first frame did not come back"
    return True, ""


_CODE_CAPACITY = """
const pre = document.querySelector('div.highlight pre');
if (!pre) return null;
const probe = document.createElement('span');
probe.style.whiteSpace = 'pre'; probe.textContent = 'x'.repeat(10);
pre.appendChild(probe);
const per = probe.getBoundingClientRect().width / 10;
probe.remove();
const cs = getComputedStyle(pre);
return Math.floor((pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)) / per);
"""

_WIDE_MATH = """
const out = [];
if (!(window.MathJax && MathJax.startup && MathJax.startup.document)) return out;
for (const item of MathJax.startup.document.getMathItemsWithin(document.body)) {
  const box = item.typesetRoot;
  if (!item.display || !box || !box.offsetParent) continue;
  const svg = box.querySelector('svg');
  const over = svg ? svg.getBoundingClientRect().width - box.getBoundingClientRect().width : 0;
  if (over > arguments[0]) out.push({over: Math.round(over), tex: item.math.trim().slice(0, 90)});
}
return out;
"""


def check_page(driver, root: Path, page: str, source: Path | None, summary: Summary | None = None,
               shots: Path | None = None) -> list[str]:
    """Open ``root/page.html`` and return what is wrong with it, one line each (empty when all is well)."""
    summary = summary or Summary()
    page_file = root / f"{page}.html"
    problems: list[str] = []
    driver.get_log("browser"), driver.get_log("performance")          # forget the previous page's logs
    driver.get(page_file.as_uri())
    state = driver.execute_async_script(_WAIT_FOR_MATHJAX)
    summary.pages += 1

    # 1. No request leaves the book: every URL the page asked for is one of its own files.
    for url in _requests(driver):
        if _outside(url, root):
            problems.append(f"requested {url[:200]}, which is not a file of the book "
                            "(vendor it under vendor/, or drop it)")
    # Also what the page would load later (async or on demand): script, stylesheet and image addresses.
    html_text = page_file.read_text(encoding="utf-8")
    for tag, url in re.findall(r'<(script|link|img|iframe|source|audio|video)\b[^>]*?\s(?:src|href)="((?:https?:)?//[^"]+)"',
                               html_text):
        if tag == "link" and not re.search(r'<link\b[^>]*rel="(?:stylesheet|preload|modulepreload|icon)"[^>]*'
                                           + re.escape(url), html_text):
            continue
        problems.append(f"<{tag}> loads {url}, which is not a file of the book")

    # 2. Math: rendered, all of it, as many formulas as the source holds, no TeX errors, no raw TeX.
    math = driver.execute_script(_MATH_STATE)
    expected = count_page_formulas(page_file)
    if source is not None:
        in_source = count_source_formulas(source)
        if in_source != expected:
            problems.append(f"the source {source.relative_to(ROOT)} holds {in_source} formulas, "
                            f"the page {expected}: some $...$ were not read as math")
    if expected and state != "typeset":
        problems.append(f"MathJax did not typeset the page ({state}); it is served from _static/mathjax/")
    if math["rendered"] != expected:
        problems.append(f"{math['rendered']} formulas rendered, {expected} in the page source; "
                        f"unrendered: {math['unrendered'][:3]}")
    for err in math["errors"]:
        problems.append(f"TeX error in a formula: {err}")
    summary.formulas += math["rendered"]
    raw = sorted(set(m.group(0) for m in _RAW_TEX.finditer(driver.execute_script(_VISIBLE_TEXT))))
    if raw:
        problems.append(f"raw TeX in the visible text: {raw[:8]}")

    # 3. Widgets: an ipywidget output needs its stored state, and a manager that draws it offline.
    widgets = driver.execute_script(_WIDGETS)
    for model_id in widgets["views"]:
        if model_id not in widgets["stored"]:
            problems.append(f"widget output {model_id} has no stored widget state: save the widget state "
                            "when executing, or make the figure a to_jshtml slider")
    if widgets["views"] and widgets["rendered"] < len(widgets["views"]):
        problems.append(f"{len(widgets['views'])} widget outputs, {widgets['rendered']} drawn: "
                        "an ipywidget needs a kernel or a widget manager; the book uses to_jshtml sliders")

    # 4. Worked solutions are collapsed when the page opens.
    solutions = driver.execute_script(_SOLUTIONS)
    for sol in solutions:
        if sol["visible"] or not sol["dropdown"]:
            problems.append(f"{sol['title']!r} is open when the page loads: give it :class: dropdown")
    summary.solutions += len(solutions)

    # 5. Screenshot, as the reader first sees the page (solutions collapsed).
    name = page.replace("/", "__")
    if shots is not None:
        saved, wrong = _screenshot(driver, shots / f"{name}.png")
        problems += wrong
        summary.screenshots += len(saved)

    # 6. Interactive figures: as many as the notebook's outputs hold, and each one moves.
    figures = driver.execute_script(_FIGURES)
    wanted = count_source_figures(source) if source is not None else 0
    if len(figures) != wanted:
        problems.append(f"{len(figures)} interactive figures on the page, {wanted} in the notebook's outputs")
    summary.figures += len(figures)
    for fig in figures:
        if not (fig["img"] and fig["slider"]) or fig["max"] < 1:
            problems.append(f"interactive figure {fig['i'] + 1} has no image, or no slider over two frames or more")
            continue
        shot = shots / f"{name}__figure{fig['i'] + 1}.png" if shots is not None else None
        moved, why = _move(driver, fig, shot)
        if not moved:
            problems.append(f"interactive figure {fig['i'] + 1} did not respond to its slider: {why}")
            continue
        summary.figures_moved += 1
        summary.screenshots += shot is not None

    # 7. With every collapsed block opened: images, code and formulas that fit, console errors.
    driver.execute_script(_OPEN_EVERYTHING)
    images = driver.execute_script(_IMAGES)
    for img in images:
        if not img["ok"]:
            problems.append(f"image did not load: {img['src'] or img['id'] or '(no src)'}")
    summary.images += sum(img["ok"] for img in images)
    capacity = driver.execute_script(_CODE_CAPACITY)
    if capacity is not None and capacity < CODE_LINE_FITS:
        problems.append(f"a code line of {CODE_LINE_FITS} characters should show whole in a {WINDOW[0]}-px "
                        f"window, only {capacity} do (book/_static/w2vc.css)")
    for block in driver.execute_script(_OVERFLOW, OVERFLOW_LIMIT_PX):
        problems.append(f"a {block['where']} block is {block['over']} px wider than its {block['box']} px box "
                        f"(limit {OVERFLOW_LIMIT_PX}): its longest line has {block['chars']} characters: "
                        f"{block['longest']!r}")
    for eq in driver.execute_script(_WIDE_MATH, OVERFLOW_LIMIT_PX):
        problems.append(f"a displayed formula is {eq['over']} px wider than its box: {eq['tex']!r}; split it "
                        "over two lines (\\begin{aligned} ... \\end{aligned})")
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"console error: {entry['message'][:300]}")
    # Requests made while the figures moved and the blocks opened count too.
    for url in _requests(driver):
        if _outside(url, root):
            problems.append(f"requested {url[:200]} after the page loaded, which is not a file of the book")
    return problems


PAGES = _toc_pages()
EXTRA = ["search", "genindex"]     # Sphinx's own pages: they too must work offline
# Pages that still fail a check, with the reason (issue 13; their chapters are being converted). The
# mark is strict: a page that passes while listed here fails, so remove it from the list when it is done.
PENDING = {
}


@pytest.mark.parametrize("page,source", PAGES + [(p, None) for p in EXTRA], ids=[p for p, _ in PAGES] + EXTRA)
def test_page_in_a_browser(browser, page, source, request):
    if page in PENDING:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"issue 13: {PENDING[page]}"))
    driver, summary = browser
    page_file = HTML / f"{page}.html"
    assert page_file.exists(), f"{page}: {page_file.relative_to(ROOT)} was not built (bash tools/book.sh)"
    if source is not None:
        assert page_file.stat().st_mtime >= source.stat().st_mtime, (
            f"{page}: the built page is older than {source.relative_to(ROOT)}: rebuild with bash tools/book.sh")
    problems = check_page(driver, HTML, page, source, summary, SHOTS)
    if problems:
        summary.failed.append(page + (" (pending, xfail)" if page in PENDING else ""))
    assert not problems, failure_message(page, problems)


def failure_message(page: str, problems: list[str]) -> str:
    return f"page {page} ({page}.html):\n  " + "\n  ".join(problems)


def test_index_leads_to_the_first_page(browser):
    driver, _ = browser
    driver.get((HTML / "index.html").as_uri())
    root = PAGES[0][0]
    assert driver.current_url.endswith(f"{root}.html"), (
        f"index.html should lead to the book's first page {root}.html, it shows {driver.current_url}")


def test_the_checks_catch_a_remote_script_and_a_widget_without_state(browser, tmp_path):
    """The bad inputs of the book, on a doctored copy of a good page: each is caught, page and URL named."""
    driver, _ = browser
    page, source = next((p, s) for p, s in PAGES if p.endswith("04_positions"))
    copy = tmp_path / "html"
    shutil.copytree(HTML, copy)
    assert check_page(driver, copy, page, source) == [], "the page must pass before it is doctored"
    page_file = copy / f"{page}.html"
    remote = "https://cdn.example.invalid/lib/plot.js"
    widget = ('<script type="application/vnd.jupyter.widget-view+json">'
              '{"model_id": "0123456789abcdef0123456789abcdef", "version_major": 2, "version_minor": 0}</script>')
    text = page_file.read_text(encoding="utf-8")
    text = text.replace("</head>", f'<script src="{remote}"></script></head>', 1)
    text = text.replace('<section id="summary">', widget + '<p>\\(q_i^\\top k_j\\)</p><section id="summary">', 1)
    page_file.write_text(text, encoding="utf-8")
    report = failure_message(page, check_page(driver, copy, page, source))
    assert report.startswith(f"page {page} "), report
    assert f"requested {remote}" in report and f"<script> loads {remote}" in report, report
    assert "widget output 0123456789abcdef0123456789abcdef has no stored widget state" in report, report
    assert "raw TeX in the visible text: ['\\\\('" in report, report


def test_a_long_page_is_shot_whole_and_unshifted(browser, tmp_path):
    """A page taller than ``SHOT_PART_HEIGHT`` comes out in parts, as wide as the window, that together hold
    all of it: its top-left and top-right corners in the first part, its bottom-left corner in the last."""
    from PIL import Image

    driver, _ = browser
    height = 2 * SHOT_PART_HEIGHT + 500
    page = tmp_path / "long.html"
    page.write_text(
        '<!doctype html><html><body style="margin:0"><div style="position:relative;height:%dpx">'
        '<div style="position:absolute;left:0;top:0;width:40px;height:40px;background:#0000ff"></div>'
        '<div style="position:absolute;right:0;top:0;width:40px;height:40px;background:#00ff00"></div>'
        '<div style="position:absolute;left:0;bottom:0;width:40px;height:40px;background:#ff0000"></div>'
        '</div></body></html>' % height)
    driver.get(page.as_uri())
    saved, problems = _screenshot(driver, tmp_path / "long.png")
    assert problems == [], problems
    assert [p.name for p in saved] == ["long__part1.png", "long__part2.png", "long__part3.png"], saved
    parts = [Image.open(p).convert("RGB") for p in saved]
    sizes = [im.size for im in parts]
    assert sizes == [(WINDOW[0], SHOT_PART_HEIGHT)] * 2 + [(WINDOW[0], 500)], sizes
    assert parts[0].getpixel((5, 5)) == (0, 0, 255), "the page's top-left corner is not in the first part's"
    assert parts[0].getpixel((WINDOW[0] - 5, 5)) == (0, 255, 0), (
        "the page's top-right corner is not in the first part's")
    assert parts[-1].getpixel((5, 495)) == (255, 0, 0), "the page's bottom-left corner is not in the last part's"
    assert driver.execute_script("return window.innerHeight") < WINDOW[1], "the window was not given back its size"
