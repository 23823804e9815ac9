#!/usr/bin/env python3
"""Check the built book's chapter pages the way a reader sees them: headless Chromium at 1280 × 900.

For every page of the built book (the chapters, ``book/_executed/*.html``, and the reference pages
of ``_toc.yml``) it measures:

* **figures**: every displayed image's shown aspect ratio (CSS width / height) against its natural
  one (pixel width / height); more than :data:`MAX_ASPECT_ERROR` (3 %) off, and more than one CSS
  pixel of height, is a squashed or stretched figure;
* **tables**: every table's width against the width of the text column; wider is a table the
  reader has to scroll sideways (even inside its own scroll box);
* **reprs**: Python object reprs such as ``<torch._C.Generator at 0x7f…>`` in the page's text
  (code cells' source left out);
* **length**: the page's height in screens of 900 px, as it opens (folded sections closed); a
  chapter of more than ``--max-screens`` (default :data:`MAX_SCREENS`) fails unless
  ``--height-report-only`` (reference pages: reported only).

Folded sections (``<details>``) are opened before figures and tables are measured, so what a
reader finds inside them is checked too. Prints one table row per page and exits 1 when a page
fails a check (2 for bad arguments).

Usage (from the repository root, after ``jupyter-book build .``)::

    python book/tools/check_pages.py _build/html                      # smoke book: all four checks
    python book/tools/check_pages.py _build/html --height-report-only # tiny book: height reported only
    python book/tools/check_pages.py _build/html --pages ecg_sue,derm_vic --json _build/page_check.json

Needs ``selenium`` and Debian's ``chromium`` + ``chromium-driver`` (``make browser``). The test
suite (``tests/test_book_browser.py``) uses :func:`measure_page` and :func:`page_problems` with its
own browser on the tiny book.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

#: the reader's window
WIDTH, HEIGHT = 1280, 900
#: the most a figure's shown aspect ratio may differ from its natural one (relative)
MAX_ASPECT_ERROR = 0.03
#: the most screens (of :data:`HEIGHT` px) a chapter page may take
MAX_SCREENS = 16
#: a Python object's default repr, e.g. <torch._C.Generator at 0x7f3a2c1d5e30>
REPR = re.compile(r"\bat 0x[0-9a-fA-F]{4,}\b")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 60.0

_READY_JS = """
const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
let rendered = 0;
for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
  let el = s.previousElementSibling;
  while (el && !(el.classList && el.classList.contains('widget-subarea'))) el = el.previousElementSibling;
  if (el && el.children.length) rendered += 1;
}
const math = document.querySelectorAll('.math').length;
const typeset = document.querySelectorAll('mjx-container').length;
const imgs = Array.from(document.images).filter(i => i.offsetParent);
return document.readyState === 'complete' && rendered >= views && (!math || typeset > 0)
       && imgs.every(i => i.complete);
"""

_HEIGHT_JS = "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);"

_OPEN_JS = """
const art = document.querySelector('article.bd-article') || document.querySelector('[role="main"]') || document.body;
for (const d of art.querySelectorAll('details')) d.open = true;   // folded sections: measure them too
"""

_MEASURE_JS = """
const art = document.querySelector('article.bd-article') || document.querySelector('[role="main"]') || document.body;
const cs = getComputedStyle(art);
const column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
const describe = el => {
  const out = el.closest('.cell_output, section');
  const h = out && out.closest('section') ? out.closest('section').querySelector('h1, h2, h3') : null;
  return (h ? h.textContent.replace('#', '').trim().slice(0, 50) : '?');
};
const images = [];
for (const img of art.querySelectorAll('img')) {
  if (!img.offsetParent || !img.complete || !img.naturalWidth || !img.naturalHeight) continue;
  const r = img.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) continue;
  images.push({src: (img.getAttribute('src') || '').slice(0, 40), section: describe(img),
               natural_w: img.naturalWidth, natural_h: img.naturalHeight, shown_w: r.width, shown_h: r.height});
}
const tables = [];
for (const t of art.querySelectorAll('table')) {
  if (!t.offsetParent) continue;
  const r = t.getBoundingClientRect();
  const head = Array.from(t.querySelectorAll('th')).slice(0, 3).map(th => th.textContent.trim()).join(' | ');
  tables.push({width: r.width, column: column, section: describe(t), head: head.slice(0, 60)});
}
const clone = art.cloneNode(true);
for (const el of clone.querySelectorAll('.cell_input, script, style')) el.remove();
return {column: column, images: images, tables: tables, text: clone.textContent};
"""


# --------------------------------------------------------------------------- measuring one page
def wait_ready(driver, timeout: float = PAGE_TIMEOUT) -> bool:
    """Wait until the page, its widgets, its math and its images have rendered (False on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if driver.execute_script(_READY_JS):
                time.sleep(0.3)  # late layout (fonts, widget images decoding)
                return True
        except Exception:  # noqa: BLE001 - a page still loading
            pass
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def reader_window(driver, width: int = WIDTH, height: int = HEIGHT):
    """The browser's viewport at ``width`` × ``height`` CSS px (device scale 1) while inside."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def measure_page(driver, url: str, *, timeout: float = PAGE_TIMEOUT) -> dict[str, Any]:
    """Open ``url`` at 1280 × 900 and measure it: ``{"url", "ready", "screens", "column", "images",
    "tables", "reprs"}`` (images with natural and shown sizes, tables with their width and the
    column's, the repr texts found)."""
    with reader_window(driver):
        driver.get(url)
        ready = wait_ready(driver, timeout)
        height = float(driver.execute_script(_HEIGHT_JS))
        viewport = float(driver.execute_script("return window.innerHeight"))
        driver.execute_script(_OPEN_JS)
        time.sleep(0.5)  # the opened sections' toggle handlers (table fitting) and layout
        m = driver.execute_script(_MEASURE_JS)
    text = m.pop("text") or ""
    reprs = sorted({text[max(0, x.start() - 40):x.end()].split("<")[-1].strip() for x in REPR.finditer(text)})
    return {"url": url, "ready": ready, "height_px": height, "viewport": viewport,
            "screens": height / HEIGHT, **m, "reprs": reprs}


def aspect_error(img: dict) -> float:
    """Relative error of an image's shown aspect ratio against its natural one (0 = true shape).

    >>> aspect_error({"natural_w": 200, "natural_h": 100, "shown_w": 100, "shown_h": 100})
    -0.5
    """
    return (img["shown_w"] / img["shown_h"]) / (img["natural_w"] / img["natural_h"]) - 1.0


def squashed(img: dict, tol: float = MAX_ASPECT_ERROR) -> bool:
    """More than ``tol`` off its natural aspect and more than one CSS px of height off (rounding).

    >>> squashed({"natural_w": 1400, "natural_h": 600, "shown_w": 688, "shown_h": 600})
    True
    >>> squashed({"natural_w": 1400, "natural_h": 600, "shown_w": 688, "shown_h": 294.9})
    False
    """
    true_h = img["shown_w"] * img["natural_h"] / img["natural_w"]
    return abs(aspect_error(img)) > tol and abs(img["shown_h"] - true_h) > 1.0


def wide(table: dict) -> bool:
    """Wider than the text column (half a pixel of rounding allowed)."""
    return table["width"] > table["column"] + 0.5


def page_problems(result: dict, *, max_screens: float | None = MAX_SCREENS) -> list[str]:
    """What fails on a measured page; ``max_screens=None`` reports the height without judging it."""
    out = []
    if not result.get("ready"):
        out.append("the page did not finish rendering (widgets, math or images) in time")
    for img in result["images"]:
        if squashed(img):
            out.append(f"figure in '{img['section']}' shown at {img['shown_w']:.0f}×{img['shown_h']:.0f} px, "
                       f"natural {img['natural_w']}×{img['natural_h']} "
                       f"(aspect off by {100 * aspect_error(img):+.0f} %)")
    for t in result["tables"]:
        if wide(t):
            out.append(f"table in '{t['section']}' ({t['head']}) is {t['width']:.0f} px wide in a "
                       f"{t['column']:.0f} px column")
    for r in result["reprs"]:
        out.append(f"object repr in the text: {r!r}")
    if max_screens is not None and result["screens"] > max_screens:
        out.append(f"{result['screens']:.1f} screens of {HEIGHT} px (at most {max_screens:g})")
    return out


def summary_row(name: str, result: dict, problems: Sequence[str]) -> list[str]:
    imgs, tables = result["images"], result["tables"]
    worst = max((abs(aspect_error(i)) for i in imgs), default=0.0)
    widest = max((t["width"] / t["column"] for t in tables if t["column"]), default=0.0)
    return [name, f"{result['screens']:.1f}", f"{sum(squashed(i) for i in imgs)}/{len(imgs)}",
            f"{100 * worst:.1f} %", f"{sum(wide(t) for t in tables)}/{len(tables)}",
            f"{widest:.2f}" if tables else "–", str(len(result["reprs"])), "ok" if not problems else "FAIL"]


HEADER = ["page", "screens", "squashed figures", "worst aspect error", "wide tables", "widest / column",
          "reprs", "verdict"]


def text_table(rows: Iterable[Sequence[str]], header: Sequence[str] = HEADER) -> str:
    """Rows as a Markdown table (readable on a terminal and pasteable into a report).

    >>> print(text_table([["a", "1"]], ["x", "y"]))
    | x | y |
    |---|---|
    | a | 1 |
    """
    rows = [list(map(str, r)) for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# --------------------------------------------------------------------------- the command
def book_pages(html_dir: Path, only: Sequence[str] | None = None) -> list[str]:
    """The pages (docnames, e.g. ``book/_executed/ecg_sue``, ``book/performance``) of a built book:
    those of the book's ``_toc.yml`` (beside ``html_dir``'s ``_build``) that were built, in its order,
    else every chapter page; ``only``: page names (the docname's last part) to keep."""
    toc = html_dir.parent.parent / "_toc.yml"
    docs = re.findall(r"(?:root|file):\s*([\w/.-]+)", toc.read_text(encoding="utf-8")) if toc.is_file() else []
    docs = [d for d in docs if (html_dir / f"{d}.html").is_file()]
    if not docs:
        docs = sorted(f"book/_executed/{p.stem}" for p in (html_dir / "book" / "_executed").glob("*.html"))
    if only:
        names = {d.rsplit("/", 1)[-1]: d for d in docs}
        missing = [o for o in only if o not in names]
        if missing:
            raise ValueError(f"no page {missing} in {html_dir}; pages: {sorted(names)}")
        docs = [d for d in docs if d.rsplit("/", 1)[-1] in only]
    return docs


def is_chapter(doc: str) -> bool:
    """Chapter pages (executed notebooks) are held to the page-height limit; reference pages are not."""
    return doc.startswith("book/_executed/")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def chromium():
    """A headless Chromium driven by selenium (Debian's chromium + chromium-driver)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise RuntimeError("Chromium is not installed (need /usr/bin/chromium and /usr/bin/chromedriver): "
                           "run `make browser` (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--window-size={WIDTH},{HEIGHT}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(PAGE_TIMEOUT)
    return drv


def check_book(html_dir: Path, *, pages: Sequence[str] | None = None, max_screens: float | None = MAX_SCREENS,
               driver=None) -> tuple[list[list[str]], dict[str, dict]]:
    """Measure every page of ``html_dir`` (:func:`book_pages`): (table rows, ``{page: {"result",
    "problems"}}``). The height limit applies to chapter pages only."""
    docs = book_pages(html_dir, pages)
    own = driver is None
    driver = driver or chromium()
    rows, out = [], {}
    try:
        with serve(html_dir) as base:
            for doc in docs:
                result = measure_page(driver, f"{base}/{doc}.html")
                problems = page_problems(result, max_screens=max_screens if is_chapter(doc) else None)
                name = doc.rsplit("/", 1)[-1]
                rows.append(summary_row(name, result, problems))
                out[name] = {"result": result, "problems": problems}
    finally:
        if own:
            driver.quit()
    return rows, out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="check_pages.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, help="the built book (e.g. _build/html)")
    ap.add_argument("--pages", default=None, help="comma-separated page names, e.g. ecg_sue,performance "
                    "(default: every page of the toc)")
    ap.add_argument("--max-screens", type=float, default=MAX_SCREENS, help=f"default {MAX_SCREENS}")
    ap.add_argument("--height-report-only", action="store_true",
                    help="report the page height without judging it (the tiny book)")
    ap.add_argument("--json", type=Path, default=None, help="also write every measurement as JSON here")
    args = ap.parse_args(argv)
    if not (args.html / "book").is_dir():
        print(f"check_pages: {args.html} has no book/ pages; build the book first "
              "(jupyter-book build . -W -n --keep-going)", file=sys.stderr)
        return 2
    only = [p.strip() for p in args.pages.split(",") if p.strip()] if args.pages else None
    try:
        rows, out = check_book(args.html, pages=only,
                               max_screens=None if args.height_report_only else args.max_screens)
    except (ValueError, RuntimeError) as exc:
        print(f"check_pages: {exc}", file=sys.stderr)
        return 2
    print(text_table(rows))
    failed = {n: o["problems"] for n, o in out.items() if o["problems"]}
    for name, problems in failed.items():
        print(f"\n{name}:")
        for p in problems:
            print(f"  - {p}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
