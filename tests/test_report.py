"""The validity report: document building, tables, alt text, engines, cache, and the real outputs.

The slow tests build the demo report once (simulated study, cold), rebuild it (cached), open the
HTML in real headless Chromium over the DevTools protocol (console errors, network requests,
images, alt text, headings, table headers, the verdict table; a screenshot is saved) and render
the PDF's pages to PNG with pdftoppm. Without Chromium or pdftoppm they skip locally and fail
when CI is set (install: ``apt-get install -y chromium poppler-utils``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cfosstats.core.cache import FileHasher, ResultsCache, cache_key
from cfosstats.report.document import Figure, Note, Section, Table, Text, markdown_table, render_document
from cfosstats.report.render import ENGINES, RenderError, check_formats, pandoc_html, render

# -- a minimal Chrome DevTools Protocol client over --remote-debugging-pipe --------------------
# Headless Chromium reads CDP messages from file descriptor 3 and writes them to descriptor 4,
# each a JSON text ended by a NUL byte: no websocket package and no Playwright needed.

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM`` or the first of the usual names on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Chromium:
    """Headless Chromium with a CDP connection over pipes; a context manager."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("chromium not found (apt-get install chromium)")
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        self.profile = tempfile.mkdtemp(prefix="cfosstats-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:  # runs in the child: its fds 3 and 4 become the pipes
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "about:blank",
            ],
            preexec_fn=child_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (CDPError, OSError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- the protocol -----------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise CDPError("chromium closed the connection")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout=None) -> dict:
        """Send a command and wait for its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None, timeout: float | None = None) -> dict:
        """Wait for an event (one already received counts)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        for event in self.events:
            if event.get("method") == method and (session is None or event.get("sessionId") == session):
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method and (session is None or event.get("sessionId") == session):
                return event

    def open(self, url: str, width: int = 1280, height: int = 900) -> Page:
        """A new tab with console, log and network recording on, navigated to `url` and loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.events.clear()
        page.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired", session)
        return page


class Page:
    """One tab: evaluate JavaScript, take screenshots, read what was recorded."""

    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise CDPError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def events(self, method: str) -> list[dict]:
        return [
            e["params"]
            for e in self.browser.events
            if e.get("method") == method and e.get("sessionId") == self.session
        ]

    def console_errors(self) -> list[str]:
        """Console messages of type error/assert, and log entries of level error."""
        errors = []
        for params in self.events("Runtime.consoleAPICalled"):
            if params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        for params in self.events("Runtime.exceptionThrown"):
            errors.append(str(params.get("exceptionDetails", {}).get("text")))
        for params in self.events("Log.entryAdded"):
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        return errors

    def requests(self) -> list[str]:
        """URLs of every request the page made (the document itself included)."""
        return [p["request"]["url"] for p in self.events("Network.requestWillBeSent")]

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page, not just the viewport, by default)."""
        params: dict = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


# -- helpers -------------------------------------------------------------------------------------


def _require_tool(found, what: str, install: str):
    """Skip locally, fail in CI, when a tool the test needs is not installed."""
    if found:
        return found
    message = f"{what} not found (install: {install})"
    if os.environ.get("CI"):
        pytest.fail(message + " -- CI is set: this test must not skip")
    pytest.skip(message)


def _headings_in_order(levels: list[int]) -> bool:
    previous = 0
    for level in levels:
        if level > previous + 1:
            return False
        previous = level
    return True


def _check_html_in_chromium(html: Path, screenshot: Path) -> dict:
    """Open the report in headless Chromium and return everything the assertions need."""
    binary = _require_tool(find_chromium(), "chromium", "apt-get install -y chromium")
    with Chromium(binary) as browser:
        page = browser.open(html.resolve().as_uri(), width=1280, height=900)
        facts = page.evaluate(
            """JSON.stringify({
              images: [...document.images].map(i => ({w: i.naturalWidth, h: i.naturalHeight,
                        complete: i.complete, alt: i.getAttribute('alt') || '', src: i.src.slice(0, 30)})),
              headings: [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1]),
              tables: [...document.querySelectorAll('table')].map(t => t.querySelectorAll('thead th').length),
              verdict: !!document.querySelector('#verdict table'),
              verdictRows: document.querySelectorAll('#verdict table tbody tr').length,
              lang: document.documentElement.getAttribute('lang'),
              title: document.title,
              text: document.body.innerText,
              external: [...document.querySelectorAll('[src],[href]')]
                  .map(e => e.getAttribute('src') || e.getAttribute('href'))
                  .filter(u => /^(https?:)?\\/\\//.test(u)),
            })"""
        )
        facts = json.loads(facts)
        facts["console_errors"] = page.console_errors()
        facts["requests"] = page.requests()
        page.screenshot(screenshot)
    return facts


OVERFLOW_SCRIPT = """JSON.stringify((() => {
  const width = document.documentElement.clientWidth;
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' '
      + (e.innerText || e.alt || '').slice(0, 40);
  const out = [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > width + 1)
      .map(name);
  const scrolled = [...document.querySelectorAll('table, pre, figure, div')]
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
      .map(name);
  return {page: document.documentElement.scrollWidth, width, out, scrolled};
})())"""


def overflow_at_1280(html: Path) -> dict:
    """Elements that reach past the right edge, or scroll sideways, at a 1280 px wide window."""
    binary = _require_tool(find_chromium(), "chromium", "apt-get install -y chromium")
    with Chromium(binary) as browser:
        page = browser.open(html.resolve().as_uri(), width=1280, height=900)
        return json.loads(page.evaluate(OVERFLOW_SCRIPT))


def right_margin_ink(pages: list[Path], margin: float = 0.04) -> list[float]:
    """Per PDF page image, the fraction of non-white pixels in the rightmost `margin` of the page."""
    from PIL import Image

    inks = []
    for png in pages:
        with Image.open(png) as image:
            grey = np.asarray(image.convert("L"))
        edge = grey[:, int(grey.shape[1] * (1 - margin)) :]
        inks.append(float((edge < 200).mean()))
    return inks


def _pdf_pages(pdf: Path, folder: Path) -> list[Path]:
    binary = _require_tool(shutil.which("pdftoppm"), "pdftoppm", "apt-get install -y poppler-utils")
    subprocess.run([binary, "-r", "40", "-png", str(pdf), str(folder / "page")], check=True, timeout=120)
    return sorted(folder.glob("page*.png"))


def _ink(png: Path) -> float:
    """Fraction of pixels that are not (near) white."""
    from PIL import Image

    with Image.open(png) as image:
        grey = np.asarray(image.convert("L"))
    return float((grey < 235).mean())


# -- fast: documents, tables, engines, cache -------------------------------------------------------


def test_markdown_tables_have_a_header_row_and_escape_pipes():
    text = markdown_table(pd.DataFrame({"annotator": ["a|b", "c"], "F1": [0.91234, np.nan]}))
    lines = text.splitlines()
    assert lines[0] == "| annotator | F1 |"
    assert set(lines[1]) <= {"|", "-"}
    assert lines[2] == "| a\\|b | 0.912 |"
    assert lines[3] == "| c | – |"


def test_wide_tables_get_relative_column_widths():
    frame = pd.DataFrame({"short": ["x"], "a long column": ["some long text " * 6]})
    separator = markdown_table(frame).splitlines()[1]
    widths = [len(part) for part in separator.strip("|").split("|")]
    assert widths[1] > widths[0] >= 3


def _document(tmp_path: Path) -> Path:
    from PIL import Image

    (tmp_path / "figures").mkdir()
    Image.fromarray((np.arange(60 * 90) % 251).astype("uint8").reshape(60, 90)).save(
        tmp_path / "figures/x.png"
    )
    verdict = Section("verdict", "Verdict").add(
        Text("One effect holds up."),
        Table(
            "verdict", "The verdict table", pd.DataFrame({"effect": ["CA1"], "majority call": ["increase"]})
        ),
    )
    body = Section("objectivity", "Objectivity")
    body.sub("a", "Agreement").add(
        Figure("x", "figures/x.png", 'What to look for: the "pale" cells.', 'A heatmap; values "0.4" to 0.9'),
        Note("no models: predictions of the pretrained library are not available for this lab"),
    )
    text = render_document({"title": "Report", "sections": [verdict, body]})
    qmd = tmp_path / "report.qmd"
    qmd.write_text(text, encoding="utf-8")
    return qmd


def test_document_has_sections_alt_text_and_typst_page_breaks(tmp_path):
    text = _document(tmp_path).read_text(encoding="utf-8")
    assert text.startswith('---\ntitle: "Report"')
    assert "# Verdict {#verdict}" in text and "## Agreement {#a}" in text
    assert "fig-alt=\"A heatmap; values '0.4' to 0.9\"" in text
    assert "| effect | majority call |" in text and ": The verdict table" in text
    assert "**Skipped.** no models: predictions of the pretrained library" in text
    assert text.count("#pagebreak(weak: true)") == 1  # before every section but the first


def test_pandoc_html_is_self_contained_with_real_alt_text(tmp_path):
    html = pandoc_html(_document(tmp_path)).read_text(encoding="utf-8")
    assert (
        'alt="A heatmap; values &#39;0.4&#39; to 0.9"' in html
        or "alt=\"A heatmap; values '0.4' to 0.9\"" in html
    )
    assert "data-fig-alt" not in html
    assert 'src="data:image/png;base64,' in html
    assert "<th>effect</th>" in html.replace(' style="text-align: left;"', "")
    assert '<section id="verdict"' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_engine_registry_and_formats(tmp_path):
    assert set(ENGINES) == {"pandoc", "quarto"}
    assert check_formats("html,pdf") == ("html", "pdf")
    with pytest.raises(ValueError, match="unknown format"):
        check_formats("docx")
    with pytest.raises(RenderError, match="unknown engine"):
        render(tmp_path / "report.qmd", "html", engine="latex")
    if shutil.which("quarto") is None:
        with pytest.raises(RenderError, match="quarto binary"):
            render(tmp_path / "report.qmd", "html", engine="quarto")


def test_cache_key_changes_when_an_input_changes(tmp_path):
    image = tmp_path / "lab-x" / "images" / "1.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"first")
    params = {"threshold": 0.5}
    key = cache_key("objectivity", params, FileHasher(tmp_path).digests([image]))
    assert list(FileHasher(tmp_path).digests([image])) == ["lab-x/images/1.png"]
    assert key == cache_key("objectivity", params, FileHasher(tmp_path).digests([image]))
    cache = ResultsCache(tmp_path / "tables")
    (cache.folder("objectivity") / "objects.csv").write_text("a\n1\n")
    cache.record("objectivity", key, seconds=1.0)
    assert ResultsCache(tmp_path / "tables").lookup("objectivity", key) is not None
    image.write_bytes(b"second")
    changed = cache_key("objectivity", params, FileHasher(tmp_path).digests([image]))
    assert changed != key
    assert ResultsCache(tmp_path / "tables").lookup("objectivity", changed) is None
    assert cache_key("objectivity", {"threshold": 0.6}, {"lab-x/images/1.png": "x"}) != cache_key(
        "objectivity", params, {"lab-x/images/1.png": "x"}
    )
    (cache.root / "objectivity" / "objects.csv").unlink()  # a stored file is gone: recompute
    assert ResultsCache(tmp_path / "tables").lookup("objectivity", key) is None


def test_missing_tables_become_plain_notes(tmp_path):
    from cfosstats.report import content
    from cfosstats.report.figures import MissingData, require

    with pytest.raises(MissingData, match="lacks column"):
        require(pd.DataFrame({"a": [1]}), ["a", "eta2"], "effects table")
    maker = content.FigureMaker(tmp_path)
    note = maker.make(
        "strip",
        lambda **_: require(None, ["x"], "effects table"),
        {"effects": None},
        size=(4, 3),
        caption="c",
        alt="a",
        what="effect-size strip plot",
    )
    assert isinstance(note, Note) and "effect-size strip plot: effects table was not computed" in note.text

    steps = {
        "effects": SimpleNamespace(name="effects", status="skipped", reason="no groups to compare", key=""),
        "models": SimpleNamespace(name="models", status="skipped", reason="no models: none here", key=""),
    }
    results = SimpleNamespace(
        table=lambda step, name: None,
        skipped=lambda step: steps[step].reason if step in steps else None,
        runs={},
        steps=steps,
    )
    section = content.validity_section(results, maker)
    assert "Validity not assessed: no groups to compare." in section.blocks[0].text
    reliability = content.reliability_section(results, maker)
    texts = [b.text for sub in reliability.subsections for b in sub.blocks if isinstance(b, Note)]
    assert any("no models: none here" in t for t in texts)


def test_animal_level_power_and_labels():
    from cfosstats.report.text import short_source
    from cfosstats.stats.power import animal_level_power

    rows = pd.DataFrame(
        {
            "level": "image",
            "comparison": "0 vs 1",
            "test": "mann_whitney",
            "n_a": [4],
            "n_b": [4],
            "alpha_comparison": [0.05 / 36],
        }
    )
    assert animal_level_power(rows, "image")["powerless"]
    rows = rows.assign(n_a=12, n_b=12, alpha_comparison=0.05 / 3)
    assert not animal_level_power(rows, "image")["powerless"]
    assert short_source("scratch/consensus_models/consensus/unet_2") == "consensus/unet_2"


# -- slow: the demo report, end to end ----------------------------------------------------------------


@pytest.mark.slow
def test_demo_report_in_chromium_and_pdf(tmp_path):
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report
    from cfosstats.simulate.study import simulate_study

    lab = load_lab("demo", data=simulate_study(tmp_path / "study", seed=0))
    started = time.perf_counter()
    cold = build_report(lab, tmp_path / "reports", formats=("html", "pdf"))
    assert set(cold.outputs) == {"html", "pdf"}
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = build_report(lab, tmp_path / "reports", formats=("html", "pdf"))
    warm_s = time.perf_counter() - started
    print(f"demo report: cold {cold_s:.1f} s, warm {warm_s:.1f} s")
    assert all(r.status in ("cached", "skipped") for r in warm.steps.values()), warm.steps
    assert cold_s >= 5 * warm_s, (cold_s, warm_s)
    folder = tmp_path / "reports" / "demo"
    for name in (
        "report.html",
        "report.pdf",
        "report.qmd",
        "tables/manifest.json",
        "tables/inputs.csv",
        "tables/effects/reproducibility.csv",
        "tables/objectivity/pairwise_f1.csv",
    ):
        assert (folder / name).is_file(), name
    assert len(list((folder / "figures").glob("*.png"))) >= 8

    # The planted effect (C+ and C- above H) is found by majority vote.
    repro = pd.read_csv(folder / "tables/effects/reproducibility.csv")
    found = repro[repro["majority_call"] == "increase"]
    assert len(found) and set(found["comparison"]) <= {"H vs C+", "H vs C-"}
    assert "H vs C+" in set(found["comparison"])
    qmd = (folder / "report.qmd").read_text(encoding="utf-8")
    assert "found by the majority of the analyses:**" in qmd

    screenshot = tmp_path / "demo-report.png"
    facts = _check_html_in_chromium(folder / "report.html", screenshot)
    print(f"screenshot: {screenshot}")
    assert facts["console_errors"] == []
    document = (folder / "report.html").resolve().as_uri()
    strange = [u for u in facts["requests"] if u != document and not u.startswith("data:")]
    assert strange == [], strange
    assert facts["external"] == []
    assert facts["verdict"] and facts["verdictRows"] >= 3
    assert len(facts["images"]) >= 8
    for image in facts["images"]:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0, image
        assert image["alt"].strip(), image
    assert facts["headings"] and _headings_in_order(facts["headings"]), facts["headings"]
    assert facts["tables"] and all(n > 0 for n in facts["tables"]), facts["tables"]
    assert facts["lang"] == "en" and "demo" in facts["title"]
    assert screenshot.stat().st_size > 50_000

    pages = _pdf_pages(folder / "report.pdf", tmp_path)
    assert len(pages) >= 3
    ink = [_ink(p) for p in pages]
    assert all(i > 0.01 for i in ink), ink
    # Nothing runs off the page: no element past the window's right edge at 1280 px, no table or
    # figure that scrolls sideways, and the PDF's right margin stays empty.
    widths = overflow_at_1280(folder / "report.html")
    assert widths["page"] <= widths["width"] and widths["out"] == [] and widths["scrolled"] == [], widths
    assert max(right_margin_ink(pages)) < 0.002


@pytest.mark.slow
def test_report_of_a_study_without_effect_finds_none(tmp_path):
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report
    from cfosstats.simulate.study import simulate_study

    lab = load_lab("demo", data=simulate_study(tmp_path / "study", seed=3, effect=0.0))
    result = build_report(lab, tmp_path / "reports", formats=("html",))
    repro = pd.read_csv(result.folder / "tables/effects/reproducibility.csv")
    assert not repro["majority_call"].isin(["increase", "decrease"]).any(), repro
    qmd = result.qmd.read_text(encoding="utf-8")
    assert "No effect is found by the majority of the analyses" in qmd
    assert result.outputs["html"].is_file()


@pytest.mark.slow
@pytest.mark.parametrize("lab_name", ["mue", "wue2"])
def test_report_on_real_data_says_what_it_skipped(train_data, tmp_path, lab_name):
    """mue and wue2 have annotators and library models but no groups: the report covers
    objectivity and the models (Fleiss' kappa of the annotators and of the ensemble's fold models),
    says why effects are skipped, and never touches its inputs."""
    import hashlib

    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report

    lab = load_lab(lab_name, data=train_data)
    folder = train_data / f"lab-{lab_name}"

    def checksums() -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}

    before = checksums()
    result = build_report(lab, tmp_path / "reports", formats=("html", "pdf"))
    assert checksums() == before
    assert result.outputs["html"].stat().st_size > 100_000
    assert result.outputs["pdf"].read_bytes()[:5] == b"%PDF-"
    pairwise = pd.read_csv(result.folder / "tables/objectivity/pairwise_f1.csv")
    raters = set(lab.annotators) | {"est_GT"}
    assert set(pairwise["rater"]) == raters
    assert len(pairwise) == len(raters) * (len(raters) - 1)  # every ordered pair
    assert pairwise["f1_median"].between(0, 1).all()
    assert result.steps["effects"].status == "skipped"
    assert result.steps["predictions"].status == "computed"
    kappa = pd.read_csv(result.folder / "tables/models/fleiss_kappa.csv").set_index("strategy")
    assert kappa.loc["annotators", "n_raters"] == len(lab.annotators)
    assert kappa.loc["consensus_models", "images"] == "all"  # every image trained 4 of the 5 members
    assert kappa.loc["consensus_models", "n_raters"] == 5  # every fold model, rejected or not
    assert kappa["kappa"].between(-1, 1).all()
    summary = pd.read_csv(result.folder / "tables/models/model_summary.csv")
    assert summary["source"].str.endswith("ensemble_1/ensemble").any()
    qmd = result.qmd.read_text(encoding="utf-8")
    assert "no groups to compare" in qmd
    # Every image is cross-validated: no image is unseen by all members, so no ensemble-size analysis.
    assert result.steps["ensemble_size"].status == "skipped"
    folds = pd.read_csv(result.folder / "tables/predictions/library_folds.csv", dtype={"image_id": str})
    assert sorted(folds["image_id"]) == sorted(lab.image_ids)  # one validation image per fold
    variants = pd.read_csv(result.folder / "tables/predictions/library_variants.csv")
    assert set(variants["variant"]) == {"consensus_ensemble", "scratch", "fine-tuned", "frozen"}
    assert "How the library's models were selected" in qmd
    assert f"Fleiss' kappa of the {len(lab.annotators)} annotators" in qmd


@pytest.mark.slow
def test_wue1_report_with_library_models_marks_their_training_images(train_data, tmp_path):
    """Two shipped expert models predict the real wue1 images inside the report: their training
    images are in-sample (crossed out of the selection rule and the tests), their unseen-image F1
    ranks as their annotators do, and a second run is served from the cache."""
    import json
    import shutil

    from cfosstats.core.resources import data_dir
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report

    library = tmp_path / "library" / "wue1"
    library.mkdir(parents=True)
    cards = {}
    for name in ("expert_1", "expert_2"):
        for suffix in (".json", ".pt"):
            shutil.copyfile(data_dir() / "models" / "wue1" / f"{name}{suffix}", library / f"{name}{suffix}")
        cards[name] = json.loads((library / f"{name}.json").read_text())
    lab = load_lab("wue1", data=train_data)
    result = build_report(lab, tmp_path / "reports", formats=("html",), library=library.parent)
    assert result.steps["predictions"].status == "computed"
    summary = pd.read_csv(result.folder / "tables/models/model_summary.csv").set_index("source")
    f1 = {}
    for name, card in cards.items():
        source = f"library/scratch/expert_models/{name}/unet_1"
        row = summary.loc[source]
        assert row["n_in_sample"] == len(card["training_images"]) == 20
        assert row["n_images"] == 36 - 20
        f1[name] = row["f1_median"]
    assert f1["expert_1"] < f1["expert_2"]  # expert_1's conservative style carries into its model
    quantification = pd.read_csv(result.folder / "tables/effects/quantification.csv", dtype={"image_id": str})
    model_rows = quantification[quantification["source"] == "library/scratch/expert_models/expert_1/unet_1"]
    trained = set(model_rows.loc[model_rows["in_sample"], "image_id"])
    assert trained == set(cards["expert_1"]["training_images"])
    qmd = result.qmd.read_text(encoding="utf-8")
    assert "could not be tested" in qmd and "library expert_1/unet_1" in qmd
    again = build_report(lab, tmp_path / "reports", formats=("html",), library=library.parent)
    assert again.cached


@pytest.mark.slow
def test_wue1_report_measures_replicates_on_the_test_images(train_data, tmp_path):
    """Reliability replicates (a second expert_1 model, three fold models of the second consensus
    replicate) predict only the 9 test images: the report compares expert_1's two seeds, draws
    ensembles of the three fold models (a single member scores what the models step measured
    from the predicted masks) and leaves the replicates out of the effect tests."""
    import json
    import shutil

    from cfosstats.core.resources import data_dir
    from cfosstats.datasets import load_lab
    from cfosstats.report import build_report

    library = tmp_path / "library" / "wue1"
    library.mkdir(parents=True)
    names = [
        "expert_1",
        "expert_1_r2",
        "consensus_model_1_r2",
        "consensus_model_2_r2",
        "consensus_model_4_r2",
    ]
    for name in names:
        for suffix in (".json", ".pt"):
            shutil.copyfile(data_dir() / "models" / "wue1" / f"{name}{suffix}", library / f"{name}{suffix}")
    test_images = json.loads((library / "expert_1_r2.json").read_text())["test_images"]
    lab = load_lab("wue1", data=train_data)
    result = build_report(lab, tmp_path / "reports", formats=("html",), library=library.parent)
    tables = result.folder / "tables"
    model_f1 = pd.read_csv(tables / "models/model_f1.csv", dtype={"image_id": str})
    replicate_rows = model_f1[model_f1["source"].str.contains("_r2/")]
    assert set(replicate_rows["image_id"]) == set(test_images)
    assert replicate_rows.groupby("source").size().eq(9).all()
    within = pd.read_csv(tables / "models/within_strategy.csv").set_index(["strategy", "pairs"])
    seeds = within.loc[("expert_models", "replicates")]
    assert seeds["n_sets"] == 2 and seeds["n_pairs"] == 1 and seeds["n_images"] == 9
    assert 0 < seeds["f1_mean"] <= 1
    sizes = pd.read_csv(tables / "ensemble_size/ensemble_size.csv")
    assert sizes["size"].tolist() == [1, 2, 3] and sizes["n_ensembles"].tolist() == [3, 3, 1]
    scores = pd.read_csv(tables / "ensemble_size/ensemble_size_scores.csv")
    consensus = model_f1[model_f1["strategy"] == "consensus_models"]
    for fold in (1, 2, 4):
        own = consensus[consensus["source"].str.endswith(f"consensus_r2/unet_{fold}")]["f1"].mean()
        single = scores.loc[scores["ensemble"] == f"consensus_model_{fold}_r2", "f1"].item()
        assert single == pytest.approx(own, abs=1e-12)
    quantified = pd.read_csv(tables / "effects/quantification.csv")["source"].unique()
    assert not any("_r2/" in str(s) for s in quantified) and any("expert_1/" in str(s) for s in quantified)
    qmd = result.qmd.read_text(encoding="utf-8")
    assert "How many models should an ensemble have?" in qmd and "fitted a = " in qmd
    assert "predict only the held-out test images" in qmd
