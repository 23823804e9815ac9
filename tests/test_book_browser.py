"""The rendered book in a real browser: every page offline, every widget slider moves its image.

Serves ``_build/html`` on 127.0.0.1 and opens each page of ``_toc.yml`` in headless Chromium
(Debian's ``chromium`` + ``chromium-driver``; ``make test`` installs them).  For each page:

* no request leaves 127.0.0.1 (``data:``/``blob:`` URLs aside), no request fails or returns
  an HTTP error, and the console shows no error;
* math is typeset by the vendored MathJax;
* every widget slider, moved with the arrow keys, changes the image the widget shows;
* chapter pages offer their ``.ipynb``, ``.py`` and results ``.json`` downloads and the CSV of each table
  they show (or one zip of them), and the links resolve;
* pages read at a glance (:func:`test_page_reads_at_a_glance`): study chapters open with a verdict box whose verdict
  agrees with the interval in the chapter's results file, no unrendered ``$`` math, nothing wider
  than the content column outside its own scroll box, no progress-bar text, no path of the build
  machine, every figure image at >= 1.5 device pixels per CSS pixel.

Screenshots go to ``_build/screenshots/``.  The book is reused from ``_build/html`` when it is
newer than the executed notebooks (``tests/test_notebooks.py`` builds it with the tiny profile);
otherwise this file runs the tiny profile (only if no executed notebooks exist) and builds it.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from pages import log_problems, page_checker
from support import book_extension

from uqxai_lib import report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
EXECUTED = ROOT / "book" / "_executed"
RESULTS = ROOT / "_build" / "results"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 60  # seconds for a page's widgets / math to render


def _toc_docnames() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                names.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return names


DOCNAMES = _toc_docnames()
CHAPTERS = [d for d in DOCNAMES if d.startswith("book/_executed/")]


def _ext():
    return book_extension()


def _report():
    from uqxai_lib import report

    return report


# --------------------------------------------------------------------------- fixtures
def _book_is_fresh() -> bool:
    for doc in DOCNAMES:
        page = HTML / f"{doc}.html"
        if not page.is_file():
            return False
        sources = [ROOT / f"{doc}.md"]
        if doc in CHAPTERS:
            sources = [ROOT / f"{doc}.ipynb", ROOT / "notebooks" / f"{doc.rsplit('/', 1)[1]}.py"]
        if any(s.is_file() and s.stat().st_mtime > page.stat().st_mtime for s in sources):
            return False
    return True


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="module")
def book_html() -> Path:
    """``_build/html`` with every toc page, built here only when missing or stale."""
    if _book_is_fresh():
        return HTML
    _run(["bash", "book/tools/vendor_assets.sh"], "vendoring the book's JavaScript")
    missing = [c for c in CHAPTERS if not (ROOT / f"{c}.ipynb").is_file()]
    if missing:
        _run([sys.executable, "-m", "uqxai_lib.run", "--profile", "tiny"], "executing the notebooks")
    jb = Path(sys.executable).with_name("jupyter-book")
    _run([str(jb) if jb.exists() else "jupyter-book", "build", ".", "-W", "-n", "--keep-going"],
         "building the book")
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server(book_html):
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(book_html))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def driver():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "Chromium is not installed (need /usr/bin/chromium and /usr/bin/chromedriver). "
            "Run `make test`, which installs them (apt-get install -y chromium chromium-driver)."
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync", "--no-first-run",
                "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(PAGE_TIMEOUT)
    yield drv
    drv.quit()


# --------------------------------------------------------------------------- helpers
def _wait(predicate, what: str, timeout: float = PAGE_TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _network_problems(perf_log: list[dict], origin: str) -> list[str]:
    """Requests to other origins, failed requests and HTTP errors from the performance log."""
    problems, urls = [], {}
    for entry in perf_log:
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            scheme = urlparse(url).scheme
            if scheme in ("data", "blob", "about", "chrome", "devtools"):
                continue
            if not url.startswith(origin + "/"):
                problems.append(f"request to another origin: {url}")
        elif method == "Network.loadingFailed":
            url = urls.get(params.get("requestId"), "?")
            if params.get("canceled") and url.startswith("blob:"):
                continue
            problems.append(f"failed request: {url} ({params.get('errorText')})")
        elif method == "Network.responseReceived":
            status = params["response"].get("status", 0)
            if status >= 400:
                problems.append(f"HTTP {status}: {params['response']['url']}")
    return problems


def _console_errors(browser_log: list[dict]) -> list[str]:
    return [f"{e['level']}: {e['message']}" for e in browser_log if e["level"] == "SEVERE"]


def _visible_images(root) -> tuple[str, ...]:
    """Digests of the pixels of every displayed, loaded image under ``root``.

    Blob URLs change whenever the widget manager re-renders a frame, so compare pixels, not src.
    """
    driver = root.parent
    data = driver.execute_script(
        """
        const out = [];
        for (const img of arguments[0].querySelectorAll('img')) {
            if (!img.offsetParent || !img.complete || !img.naturalWidth) continue;  // hidden or loading
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            c.getContext('2d').drawImage(img, 0, 0);
            out.push(c.toDataURL('image/png'));
        }
        return out;
        """,
        root,
    )
    return tuple(sorted(hashlib.sha1(d.encode()).hexdigest() for d in data))


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"))


def _widget_roots(driver):
    """Top-level rendered widget views (one per widget-view script tag)."""
    return driver.execute_script(
        """
        const out = [];
        for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
            // the manager renders each view into a .widget-subarea placed before its script tag
            let el = s.previousElementSibling;
            while (el && !el.classList.contains('widget-subarea')) el = el.previousElementSibling;
            if (el && el.querySelector('.widget-slider')) out.push(el);
        }
        return out;
        """
    )


# --------------------------------------------------------------------------- the test
@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_renders_offline_and_widgets_respond(docname, server, driver):
    from selenium.webdriver.common.keys import Keys

    driver.get_log("browser"), driver.get_log("performance")  # drop earlier pages' entries
    driver.get(f"{server}/{docname}.html")
    _wait(lambda: driver.execute_script("return document.readyState") == "complete", "page load")
    tag = docname.replace("/", "__")

    # math typeset by the vendored MathJax
    if driver.execute_script("return document.querySelectorAll('.math').length"):
        _wait(lambda: driver.execute_script("return document.querySelectorAll('mjx-container').length"),
              "MathJax to typeset the page's math")

    # widgets: one rendered view per widget-view script, each with its sliders
    n_views = driver.execute_script(
        "return document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
    roots = []
    if n_views:
        roots = _wait(lambda: (lambda r: r if len(r) == n_views else None)(_widget_roots(driver)),
                      f"{n_views} widget views to render (is the widget manager loaded?)")
    moved = 0
    for w, root in enumerate(roots):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", root)
        handles = root.find_elements("css selector", ".widget-slider .noUi-handle")
        assert handles, f"{docname}: widget {w} shows no slider"
        _wait(lambda: _visible_images(root), f"widget {w}'s image to show")
        for s, handle in enumerate(handles):
            if handle.get_attribute("aria-valuemax") == handle.get_attribute("aria-valuemin"):
                continue  # a single-value slider cannot move
            before = _visible_images(root)
            handle.send_keys(Keys.ARROW_RIGHT)
            after = _wait(lambda: (lambda a: a if a != before else None)(_visible_images(root)),
                          f"{docname}: widget {w}, slider {s} to change the displayed image", timeout=10)
            assert after and after != before
            _shot(driver, f"{tag}__widget{w}_slider{s}")
            handle.send_keys(Keys.ARROW_LEFT)
            _wait(lambda: _visible_images(root) == before,
                  f"{docname}: widget {w}, slider {s} to come back to the first image", timeout=10)
            moved += 1
    if roots:
        assert moved, f"{docname}: widgets found but no slider could be moved"

    # chapters: .ipynb and .py downloads exist and resolve
    if docname in CHAPTERS:
        name = docname.rsplit("/", 1)[1]
        links = driver.execute_script(
            "return Array.from(document.querySelectorAll('.dropdown-download-buttons a')).map(a => a.href)")
        assert any(h.endswith(f"{name}.ipynb") for h in links), f"{docname}: no .ipynb download in {links}"
        if (ROOT / "notebooks" / f"{name}.py").is_file():
            assert any(h.endswith(f"{name}.py") for h in links), f"{docname}: no .py download in {links}"
        if (RESULTS / f"{name}.json").is_file():
            assert any(h.endswith(f"_results/{name}.json") for h in links), \
                f"{docname}: no results .json download in {links}"
        # the tables the chapter shows, as CSV (each, or one zip when there are many)
        tables = _report().load_tables(RESULTS / f"{name}.json")
        if tables and len(tables) <= _ext().MENU_TABLES:
            for t, table in tables:
                url = next((h for h in links if h.endswith(f"_results/{name}/{t}.csv")), None)
                assert url, f"{docname}: no download of table {t!r} in {links}"
                with urllib.request.urlopen(url) as resp:
                    rows = list(csv.reader(io.StringIO(resp.read().decode("utf-8"))))
                assert rows[0] == table["columns"] and len(rows) == len(table["rows"]) + 1, f"{docname}: {url}"
        elif tables:
            url = next((h for h in links if h.endswith(f"_results/{name}/{name}_tables.zip")), None)
            assert url, f"{docname}: no zip of its {len(tables)} tables in {links}"
            with urllib.request.urlopen(url) as resp:
                names = zipfile.ZipFile(io.BytesIO(resp.read())).namelist()
            assert names == [f"{t}.csv" for t, _ in tables], f"{docname}: {url} holds {names}"
        for h in links:
            if h.startswith(server):
                with urllib.request.urlopen(h) as resp:
                    assert resp.status == 200, f"{docname}: download {h} gives HTTP {resp.status}"

    driver.execute_script("window.scrollTo(0, 0)")
    _shot(driver, tag)
    time.sleep(0.3)  # let late font / script requests land in the logs
    problems = _network_problems(driver.get_log("performance"), server)
    problems += _console_errors(driver.get_log("browser"))
    assert not problems, f"{docname}:\n" + "\n".join(problems)


MAX_PAGE_BYTES = 12_000_000  # embedded widget frames: keep each page light enough to open quickly


def test_pages_load_no_remote_scripts_and_stay_small(book_html):
    """No page names an http(s) script/style/font URL (links in prose are fine); no page is huge."""
    remote, large = [], []
    pattern = re.compile(r"""<(?:script|link)[^>]+(?:src|href)=["'](https?:)?//""", re.I)
    for page in book_html.rglob("*.html"):
        if pattern.search(page.read_text(encoding="utf-8", errors="replace")):
            remote.append(str(page.relative_to(book_html)))
        if page.stat().st_size > MAX_PAGE_BYTES:
            large.append(f"{page.relative_to(book_html)} ({page.stat().st_size / 1e6:.1f} MB)")
    assert not remote, f"pages load remote scripts/styles: {remote}"
    assert not large, f"pages over {MAX_PAGE_BYTES / 1e6:.0f} MB (fewer/smaller widget frames, lower dpi): {large}"


# --------------------------------------------------------------------------- reading at a glance
#: text a progress bar leaves behind (tqdm bars, rates, timing lines)
PROGRESS = re.compile(r"\d+%\|[^|\n]{0,80}\||[█▉▊▋▌▍▎▏]{2,}|\b\d+(\.\d+)?\s?(it/s|s/it)\b|\belapsed\b")
MIN_DENSITY = 1.5  # device pixels per CSS pixel of a figure image
#: chapters that open with a verdict box (others do when their results record has a ``claim``)
STUDIES = ("primer_gradcam", "ecg_sue", "mri_mc_dropout", "derm_vic")


def _expected_word(record: dict) -> str | None:
    """The verdict an independent reading of the record's interval gives (None without primary/claim)."""
    prim, claim = record.get("primary"), record.get("claim") or {}
    if not isinstance(prim, dict) or claim.get("expected") not in ("higher", "lower"):
        return None
    try:
        lo, hi = (float(v) for v in prim["ci95"])
    except (TypeError, ValueError, KeyError):
        lo = hi = float("nan")
    direction = "higher" if lo > 0 else "lower" if hi < 0 else None  # NaN compares False: no direction
    if direction is None:
        return "not reproduced"
    return "reproduced" if direction == claim["expected"] else "reversed"


_VISIBLE_TEXT_JS = """
const art = document.querySelector('article.bd-article') || document.body;
const clone = art.cloneNode(true);
// drop code, math and folded content before reading the text
for (const el of clone.querySelectorAll('pre, code, mjx-container, script, style, details:not([open]) > :not(summary)')) el.remove();
const div = document.createElement('div');
div.style.position = 'absolute'; div.style.left = '-99999px'; div.appendChild(clone);
document.body.appendChild(div);
const text = clone.innerText;
div.remove();
return text;
"""

_OVERFLOW_JS = """
const art = document.querySelector('article.bd-article');
const col = art.getBoundingClientRect();
const scrolls = el => {
  for (let a = el; a && a !== art; a = a.parentElement) {
    const ox = getComputedStyle(a).overflowX;
    if ((ox === 'auto' || ox === 'scroll' || ox === 'hidden') && a.getBoundingClientRect().right <= col.right + 1) return true;
  }
  return false;
};
const bad = [];
for (const el of art.querySelectorAll('*')) {
  if (!el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;  // not displayed
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.right <= col.right + 1) continue;
  if (scrolls(el)) continue;
  bad.push(`${el.tagName.toLowerCase()}.${[...el.classList].join('.')} right=${Math.round(r.right)} > ${Math.round(col.right)}`);
  if (bad.length > 5) break;
}
return bad;
"""

_IMAGE_DENSITY_JS = """
const out = [];
for (const img of document.querySelectorAll('article.bd-article .cell_output img')) {
  if (!img.offsetParent || !img.complete || !img.naturalWidth || !img.clientWidth) continue;
  out.push([img.getAttribute('src').slice(0, 60), img.naturalWidth * 1.0 / img.clientWidth * window.devicePixelRatio]);
}
return out;
"""


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_reads_at_a_glance(docname, server, driver):
    """Chapters and pages: rendered math, no overflow, no logs, no paths, sharp figures; chapters
    of the studies also open with a verdict box that matches their results file."""
    name = docname.rsplit("/", 1)[1]
    driver.get(f"{server}/{docname}.html")
    _wait(lambda: driver.execute_script("return document.readyState") == "complete", "page load")
    if driver.execute_script("return document.querySelectorAll('.math').length"):
        _wait(lambda: driver.execute_script("return document.querySelectorAll('mjx-container').length"),
              "MathJax to typeset the page's math")
    problems = []

    # a verdict box, right after the title, whose verdict agrees with the results file
    titles = driver.execute_script(
        "return Array.from(document.querySelectorAll('article .admonition.uqxai-verdict > .admonition-title'))"
        ".map(e => e.innerText)")
    record = {}
    if docname in CHAPTERS and (RESULTS / f"{name}.json").is_file():
        record = json.loads((RESULTS / f"{name}.json").read_text())
    word = _expected_word(record)
    prefix = "Verdict"
    lad = record.get("verdict") if isinstance(record.get("verdict"), dict) else None
    if lad and lad.get("rungs") is not None:
        # a ladder box: its title names the headline rung and its outcome; an across-seed headline is
        # read again, independently, from the robustness record's across-seed interval
        prefix = "Verdict " + report.ladder_headline_phrase(lad)
        word = lad.get("headline")
        rob_path = RESULTS / "robustness.json"
        if (lad.get("headline_rung") or "across_seeds") == "across_seeds" and rob_path.is_file():
            rob = json.loads(rob_path.read_text()).get(name)
            if isinstance(rob, dict):
                again = _expected_word({"primary": {"ci95": rob.get("ci95")}, "claim": record.get("claim") or {}})
                if again is not None and word != "undefined" and again != word:
                    problems.append(f"ladder headline {word!r} but the across-seed interval says {again!r}")
    study = docname in CHAPTERS and (name in STUDIES or "claim" in record)
    if not study:
        pass
    elif len(titles) != 1:
        problems.append(f"{len(titles)} verdict boxes (want 1)")
    elif word is not None and titles[0].strip().replace("\u2019", "'") != f"{prefix}: {word}":
        problems.append(f"verdict box says {titles[0]!r}, the interval in the results file says {word!r}")
    elif "primary" not in record and "not yet computed" not in titles[0]:
        problems.append(f"no primary in the results file, but the box says {titles[0]!r}")
    else:
        first = driver.execute_script(
            "const a = document.querySelector('article section'); const b = a && a.querySelector('.uqxai-verdict');"
            "const h2 = a && a.querySelector('section'); return !!b && (!h2 || (b.compareDocumentPosition(h2) & 4) > 0)")
        if not first:
            problems.append("the verdict box is not above the chapter's first section")

    # visible text: no unrendered math, no progress bars
    text = driver.execute_script(_VISIBLE_TEXT_JS)
    dollars = [m.group(0) for m in re.finditer(r".{0,30}\$.{0,30}", text)]
    if dollars:
        problems.append(f"unrendered math ($) in the visible text: {dollars[:3]}")
    bars = [m.group(0) for m in PROGRESS.finditer(text)]
    if bars:
        problems.append(f"progress-bar / timing text on the page: {bars[:3]}")

    # no path of the build machine anywhere in the page (folded cells included)
    html = driver.page_source
    for path in {str(ROOT), str(Path.home()) + "/"} - {"/"}:
        if path in html:
            problems.append(f"build-machine path {path!r} in the page")
    if docname in CHAPTERS:  # timing and "results ->" lines printed into the outputs (tests/pages.py)
        problems += log_problems(html)

    # nothing wider than the column outside its own scroll box
    wide = driver.execute_script(_OVERFLOW_JS)
    if wide:
        problems.append(f"elements wider than the content column without a scroll box: {wide}")

    # figures at >= 1.5 device px per CSS px
    for src, density in driver.execute_script(_IMAGE_DENSITY_JS):
        if density < MIN_DENSITY:
            problems.append(f"figure {src}... at {density:.2f} device px per CSS px (< {MIN_DENSITY})")

    if docname in CHAPTERS:
        _shot(driver, f"{docname.replace('/', '__')}__first_screen")
    assert not problems, f"{docname}:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- search, read from file://
#: a word of the chapters' prose (the dermoscopy and cross-study chapters), rare elsewhere
SEARCH_WORD = "Rashomon"

_SEARCH_HITS_JS = """
const status = document.querySelector('#search-results .search-summary, #search-results p');
const items = Array.from(document.querySelectorAll('#search-results ul.search li'));
return {finished: !!status && /found/i.test(status.innerText) && !/searching/i.test(status.innerText),
        hits: items.map(li => [li.querySelector('a') ? li.querySelector('a').getAttribute('href') : '',
                               li.querySelector('p.context') ? li.querySelector('p.context').textContent : null])};
"""


def test_search_from_file_url_shows_snippets_without_console_errors(book_html, driver):
    """The book read offline from file://: a search finds chapters and each hit shows its snippet
    (Sphinx fetches the hit's page for it, which browsers refuse on file://; the book's shim answers
    from _static/uqxai_search_text.js), with no console error."""
    driver.get_log("browser")  # drop earlier pages' entries
    url = (book_html / "search.html").as_uri() + f"?q={SEARCH_WORD}"
    driver.get(url)
    assert driver.execute_script("return location.protocol") == "file:"
    state = _wait(lambda: (lambda s: s if s["finished"] and s["hits"] else None)(driver.execute_script(_SEARCH_HITS_JS)),
                  f"search results for {SEARCH_WORD!r} on {url}")
    # summaries arrive one by one after the hits are listed: wait until every hit has one
    state = _wait(lambda: (lambda s: s if all(c is not None for _, c in s["hits"]) else None)(
        driver.execute_script(_SEARCH_HITS_JS)), "a snippet under every search hit", timeout=20)
    hits = state["hits"]
    chapters = [(h, c) for h, c in hits if "_executed/" in h]
    assert chapters, f"search for {SEARCH_WORD!r} found no chapter: {hits}"
    for href, context in chapters:
        assert context.strip(), f"empty snippet for {href}"
    assert any(SEARCH_WORD.lower() in c.lower() for _, c in chapters), \
        f"no chapter snippet shows the searched word: {chapters}"
    _shot(driver, "search_file_url")
    time.sleep(0.3)
    log = driver.get_log("browser")
    problems = _console_errors(log)
    problems += [f"{e['level']}: {e['message']}" for e in log if "content block not found" in e["message"].lower()]
    assert not problems, "search.html from file://:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- layout at 1280 x 900
def _checker():
    """``book/tools/check_pages.py`` (the page checker a reader can run on the smoke book too)."""
    return page_checker()


#: rows of the per-page table, in the order the pages were checked
_LAYOUT_ROWS: dict[str, list[str]] = {}


@pytest.mark.parametrize("docname", DOCNAMES)
def test_page_layout_true_figures_fitting_tables_no_reprs(docname, server, driver):
    """At 1280 × 900: every figure at its natural aspect (± 3 %), no table wider than the column,
    no ``<... at 0x...>`` repr in the text. The page height is measured and reported (the tiny
    book's chapters are not the smoke book's; ``check_pages.py`` judges it on the smoke book)."""
    check = _checker()
    result = check.measure_page(driver, f"{server}/{docname}.html")
    problems = check.page_problems(result, max_screens=None)
    _LAYOUT_ROWS[docname] = check.summary_row(docname.rsplit("/", 1)[1], result, problems)
    # the per-page table so far (all chapters once the last one ran), on stdout (-s) and in _build/
    table = check.text_table(_LAYOUT_ROWS.values())
    (ROOT / "_build" / "page_check_tiny.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    if docname in CHAPTERS:
        assert result["images"], f"{docname}: no figure measured (did the page render?)"
    assert not problems, f"{docname}:\n" + "\n".join(problems)



def _png(w: int, h: int) -> str:
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (30, 90, 160)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _page_with(css: str, body: str) -> str:
    return (f"<!doctype html><html><head><style>body{{margin:0}} article.bd-article{{width:688px;padding:0 6px}}"
            f"</style>{css}</head><body><article class='bd-article'><section><h2>S</h2>"
            f"<div class='cell_output'>{body}</div></section></article></body></html>")


def test_book_css_keeps_inline_sized_figures_true_and_fits_wide_tables(tmp_path, driver):
    """The fix itself, on a hand-made page: a figure whose inline width/height is its page size (as
    myst-nb writes retina figures) and a 12-column table. With only ``max-width: 100%`` (the theme)
    the checker finds the figure squashed and the table too wide; with the book's CSS and table
    script neither."""
    check = _checker()
    static = ROOT / "book" / "_static"
    (tmp_path / "uqxai.css").write_text((static / "uqxai.css").read_text())
    (tmp_path / "uqxai-tables.js").write_text((static / "uqxai-tables.js").read_text())
    figure = f'<img src="data:image/png;base64,{_png(1400, 600)}" style="width: 1400px; height: 600px;">'
    from uqxai_lib import report

    wide = report.format_table(
        __import__("pandas").DataFrame({f"column_name_{i}": [f"value {i}", f"another value {i}"] for i in range(12)}))
    body = figure + f"<div class='output text_html'>{wide._repr_html_()}</div>"
    (tmp_path / "theme.html").write_text(_page_with("<style>img{max-width:100%}</style>", body))
    (tmp_path / "book.html").write_text(_page_with('<link rel="stylesheet" href="uqxai.css">'
                                                   '<script src="uqxai-tables.js"></script>', body))
    with check.serve(tmp_path) as base:
        theme = check.measure_page(driver, f"{base}/theme.html")
        book = check.measure_page(driver, f"{base}/book.html")
    assert [check.squashed(i) for i in theme["images"]] == [True]
    assert any(check.wide(t) for t in theme["tables"])
    assert book["images"] and not any(check.squashed(i) for i in book["images"])
    assert abs(check.aspect_error(book["images"][0])) < 0.01
    assert book["tables"] and not any(check.wide(t) for t in book["tables"]), book["tables"]
