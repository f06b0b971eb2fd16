"""The serve page for keyboard and screen-reader users (WCAG 2.2 AA basics): the upload was out of the tab order
(`display: none`), the active labels and errors were said by colour alone, the timeline canvas had no text with
its scores, a green bar was 3.8:1 on its track, and a long file name widened a 320 px page. The markup is read with
html.parser, the contrast computed from style.css, app.js's text functions run under node, and the page itself
driven in headless Chromium (its server's answers stubbed: the page is what is tested)."""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parent.parent / "hfspeech" / "serve" / "static"
CHROMIUM = "/usr/bin/chromium"
NODE = shutil.which("node")
PAGE = "http://localhost:8398/"  # never reached (stub_server answers); localhost: a secure page, the microphone
LONG_NAME = "speaker_0001_recorded_in_the_kitchen_with_the_window_open_and_the_kettle_on"
WINDOWS = [{"index": i, "start": i * 0.5, "end": i * 0.5 + 1.0, "labels": ["engine", LONG_NAME, "rain"],
            "scores": [0.9 - i * 0.1, 0.5, None], "active_labels": [], "skipped": False, "inactive": False}
           for i in range(4)]
ANSWER = {"predictions": [{"label": "engine", "score": 0.812, "active": True},
                          {"label": LONG_NAME, "score": 0.1, "active": False},
                          {"label": "rain", "score": 0.07, "active": True}],
          "num_windows": 4, "aggregate": "mean", "active_labels": ["engine", "rain"], "windows": WINDOWS,
          "labels": ["engine", LONG_NAME, "rain", "alarm"]}


class Page(HTMLParser):
    """Each element's tag and attributes in document order, and the text inside each `<label>`."""

    def __init__(self):
        super().__init__()
        self.elements, self.label_text, self.open_labels = [], {}, []

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **dict(attrs), "in_label": list(self.open_labels)}
        self.elements.append(element)
        if tag == "label":
            self.open_labels.append(len(self.elements) - 1)
            self.label_text[len(self.elements) - 1] = ""

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels.pop()

    def handle_data(self, data):
        for label in self.open_labels:
            self.label_text[label] += data


@pytest.fixture(scope="module")
def page() -> Page:
    parsed = Page()
    parsed.feed((STATIC / "index.html").read_text())
    return parsed


def test_language_title_headings_and_zoom(page):
    html = next(e for e in page.elements if e["tag"] == "html")
    assert html.get("lang") == "en"
    assert "hfspeech" in (STATIC / "index.html").read_text().split("<title>")[1].split("</title>")[0]
    levels = [int(e["tag"][1]) for e in page.elements if re.fullmatch(r"h[1-6]", e["tag"])]
    assert levels[0] == 1 and levels.count(1) == 1 and all(b - a <= 1 for a, b in zip(levels, levels[1:]))
    viewport = next(e for e in page.elements if e.get("name") == "viewport")["content"]
    assert "user-scalable=no" not in viewport and "maximum-scale" not in viewport


def test_every_control_is_named_and_results_errors_and_timeline_have_text(page):
    by_id = {e["id"]: e for e in page.elements if "id" in e}
    for control in (e for e in page.elements if e["tag"] in ("input", "button")):
        named = control.get("aria-label") or any(page.label_text[i].strip() for i in control["in_label"])
        assert named or control["tag"] == "button", f"{control} has no name"
    assert by_id["result"]["tag"] in ("ol", "ul")  # a list, not divs of bars
    alerts = [e for e in page.elements if e.get("role") == "alert"]
    assert alerts and all(e["in_label"] == [] for e in alerts) and by_id["status-text"]["role"] == "status"
    canvas = by_id["timeline"]
    assert canvas["role"] == "img" and canvas["aria-label"] and canvas["aria-describedby"] == "timeline-caption"
    assert by_id["timeline-table"]["tag"] == "table"


def custom_properties(css: str) -> dict[str, dict[str, str]]:
    """`--name: value` of the light `:root` and of the one under `prefers-color-scheme: dark`."""
    dark_at = css.index("prefers-color-scheme: dark")
    blocks = {"light": css[css.index(":root"):dark_at], "dark": css[dark_at:css.index("}", dark_at)]}
    return {scheme: dict(re.findall(r"--([\w-]+):\s*([^;}]+)", block)) for scheme, block in blocks.items()}


def contrast(first: str, second: str) -> float:
    def luminance(colour: str) -> float:
        colour = colour.strip().lstrip("#")
        if "," in colour:
            channels = [int(c) / 255 for c in colour.split(",")]
        else:
            colour = "".join(c * 2 for c in colour) if len(colour) == 3 else colour
            channels = [int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# (foreground, background, the least ratio): text 4.5:1, and the bars too; focus ring and field borders 3:1
PAIRS = [("ink", "bg", 4.5), ("muted", "bg", 4.5), ("error", "bg", 4.5), ("on-accent", "accent", 4.5),
         ("on-accent", "recording", 4.5), ("bar", "track", 4.5), ("active", "track", 4.5), ("active", "bg", 4.5),
         ("placeholder", "bg", 4.5), ("cell", "bg", 4.5), ("focus", "bg", 3), ("field-border", "bg", 3)]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_bars_contrast_in_both_schemes(scheme):
    css = (STATIC / "style.css").read_text()
    colours = custom_properties(css)[scheme]
    low = {f"{a} on {b}": round(contrast(colours[a], colours[b]), 2) for a, b, least in PAIRS
           if contrast(colours[a], colours[b]) < least}
    assert not low, low
    rules = re.sub(r":root\s*{[^}]*}", "", re.sub(r"/\*.*?\*/", "", css, flags=re.S))
    assert not re.findall(r"#[0-9a-fA-F]{3,6}\b|rgba?\(", rules)  # every colour is one of those checked
    assert not re.search(r"animation|transition", rules)  # nothing moves (else: prefers-reduced-motion)


def run_node(expression: str):
    script = f"const page = require({json.dumps(str(STATIC / 'app.js'))}); console.log(JSON.stringify({expression}))"
    return json.loads(subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(NODE is None, reason="no node")
def test_the_status_caption_and_table_say_in_words_what_colour_and_shades_show():
    answer = json.dumps(ANSWER)
    summary = run_node(f"page.answerSummary('clip.wav', {answer})")
    assert summary == "clip.wav: 4 windows · top: engine (0.812) · active: engine, rain"
    entries = run_node(f"page.windowEntries({answer}.windows)")
    assert entries[1] == ["0.5–1.5 s", f"engine (0.800), {LONG_NAME} (0.500), rain (–)"] and len(entries) == 4
    caption = run_node(f"(() => {{ const a = {answer}, t = page.timelineRows(a.windows, a.labels);"
                       f" return page.timelineCaption(a.windows, a.labels, t.rows, t.ranked); }})()")
    assert caption.startswith("4 windows, 0–2.5 s: 3 labels, those in some window's top-3; 1 of the model's 4")
    assert caption.endswith(f"Rows, top to bottom: engine, {LONG_NAME}, rain.")  # full names, the canvas cuts


def stub_server(route):
    """The server's part: the page's own files, /info, and the canned answer (or a 400 for `bad.wav`)."""
    url, request = route.request.url, route.request
    if url.endswith("/info"):
        return route.fulfill(json={"labels": ANSWER["labels"], "sampling_rate": 16000, "backend": "pytorch",
                                   "window_seconds": 1.0, "revision": "test"})
    if "/static/" in url:
        name = url.rsplit("/", 1)[1]
        kind = {"js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
        return route.fulfill(body=(STATIC / name).read_bytes(), content_type=kind)
    if request.method == "POST":
        if request.post_data_buffer.startswith(b"bad"):
            return route.fulfill(status=400, json={"error": "upload: the file cannot be decoded"})
        return route.fulfill(json=ANSWER)
    return route.fulfill(body=(STATIC / "index.html").read_bytes(), content_type="text/html")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        yield launched
        launched.close()


def open_page(browser, origin=PAGE, **options):
    page = browser.new_page(**options)
    page.route(f"{origin}**", stub_server)
    page.goto(origin)
    page.wait_for_function("document.getElementById('model-info').textContent.includes('4 labels')")
    return page


def test_the_keyboard_alone_uploads_records_and_sees_where_it_is(browser, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser)
    # File choosers intercepted from here on: expect_file_chooser's own request is sent without waiting, so a Space
    # pressed at once could reach Chromium first under load (no chooser event, a 30 s timeout; puppeteer#6040).
    page.on("filechooser", lambda _chooser: None)
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order == ["file", "record", "top-k", "api-key"]  # the upload was skipped: display: none
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    upload = page.locator("label.button")
    assert upload.evaluate("l => getComputedStyle(l).outlineStyle") == "solid"  # its focus ring
    (tmp_path / "clip.wav").write_bytes(b"RIFF clip")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(str(tmp_path / "clip.wav"))
    page.wait_for_selector("#result .row")
    rows = page.locator("#result li.row")
    assert rows.evaluate_all("rows => rows.map(r => r.innerText.replace(/\\s+/g, ' ').trim())") == [
        "engine 0.812 active", f"{LONG_NAME} 0.100", "rain 0.070 active"]
    summary = "clip.wav: 4 windows · top: engine (0.812) · active: engine, rain"
    expect(page.locator("#status-text")).to_have_text(summary)  # what a screen reader hears
    assert page.locator("#timeline-table tbody tr").count() == 4
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "record"
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('record').textContent === 'Stop recording'")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('record').textContent === 'Record'")
    page.wait_for_function("document.getElementById('status-text').textContent.startsWith('recording: 4 windows')")
    page.close()


def test_an_error_is_an_alert_in_words(browser, tmp_path):
    from playwright.sync_api import expect

    page = open_page(browser)
    (tmp_path / "bad.wav").write_bytes(b"bad bytes")
    page.set_input_files("#file", str(tmp_path / "bad.wav"))
    page.wait_for_selector("#status.error")
    assert page.locator("[role=alert]").text_content() == "Error: bad.wav: upload: the file cannot be decoded"
    assert page.locator("#status-text").text_content() == ""
    page.close()
    page = open_page(browser, origin="http://serve.test/")  # not https nor localhost: no microphone
    page.click("#record")
    expect(page.locator("[role=alert]")).to_have_text(
        "Error: the microphone needs the page on https or localhost; upload a file instead")
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_320_pixels_wide_nothing_scrolls_sideways_and_the_canvas_draws_in_the_scheme(browser, tmp_path, scheme):
    page = open_page(browser, viewport={"width": 320, "height": 640}, color_scheme=scheme)
    clip = tmp_path / f"{LONG_NAME}_{LONG_NAME}.wav"
    clip.write_bytes(b"RIFF clip")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#timeline-section:not([hidden])")
    page.locator("#timeline-section summary").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    names = page.evaluate("""() => { const c = document.getElementById('timeline');
        const pixels = c.getContext('2d').getImageData(0, 0, 170, c.height).data;
        let most = 0; for (let i = 0; i < pixels.length; i += 4) if (pixels[i + 3] > 200)
          most = Math.max(most, pixels[i] + pixels[i + 1] + pixels[i + 2]); return most; }""")
    assert (background == "rgb(255, 255, 255)") == (scheme == "light")
    assert (names > 600) == (scheme == "dark")  # the names drawn light on dark, dark on light
    page.close()
