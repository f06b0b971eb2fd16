"""What a user looks at when a model has hundreds to thousands of classes (speaker ID) or long class names: the
confusion-matrix JSON and PNG, a `predict --timeline` PNG and the `hfspeech serve` page."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hfspeech.evaluation.report import write_confusion_matrix_json
from hfspeech.evaluation.report_plots import confusion_figure, plot_confusion_matrix
from hfspeech.inference.classifier import Prediction
from hfspeech.inference.timeline import write_timeline
from hfspeech.inference.windows import WindowResult

CHROMIUM = "/usr/bin/chromium"
KITCHEN = "_recorded_in_the_kitchen_with_the_window_open_and_the_dishwasher_running_" * 3  # 222 characters in all


def speaker_matrix(count: int, seed: int = 0) -> np.ndarray:
    """Three clips a speaker, half of them right, the rest anywhere."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(count), 3)
    predicted = np.where(rng.random(truth.size) < 0.5, truth, rng.integers(0, count, truth.size))
    matrix = np.zeros((count, count), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def test_a_confusion_matrix_json_past_a_thousand_classes_holds_its_nonzero_cells(tmp_path):
    count = 1200  # past the 1,000 classes kept dense
    matrix, labels = speaker_matrix(count), [f"说话人_{i:04d}" for i in range(count)]
    path = tmp_path / "test_confusion_matrix.json"
    write_confusion_matrix_json(str(path), matrix, labels)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["layout"] == "nonzero cells" and written["labels"] == labels and "matrix" not in written
    assert len(written["cells"]) == np.count_nonzero(matrix) and [0, 0, int(matrix[0, 0])] in written["cells"]
    assert path.stat().st_size < 200_000  # dense: 4.3 MB, growing with the square of the classes
    cell_lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("    [")]
    assert len(cell_lines) == count and cell_lines[0].startswith("    [0, ")  # a true label's cells a line
    from hfspeech.evaluation.report import read_confusion_matrix

    assert read_confusion_matrix(str(path))[1].tolist() == matrix.tolist()
    small = tmp_path / "small.json"  # up to the threshold, dense as before: existing readers read `matrix`
    write_confusion_matrix_json(str(small), matrix[:5, :5], labels[:5])
    assert json.loads(small.read_text())["matrix"] == matrix[:5, :5].tolist()
    read_labels, read_matrix = read_confusion_matrix(str(small))
    assert read_labels == labels[:5] and read_matrix.tolist() == matrix[:5, :5].tolist()


def test_the_heat_map_of_thousands_of_classes_is_drawn_in_blocks_that_keep_a_lone_error():
    count = 2001  # past twice the 1,000 cells a side drawn: blocks of 3 x 3 classes
    matrix = 2 * np.eye(count, dtype=np.int64)
    matrix[7, 7], matrix[7, 1900] = 0, 2  # every clip of speaker 7 taken for speaker 1900
    figure = confusion_figure(matrix, [f"spk_{i:04d}" for i in range(count)])
    drawn = np.asarray(figure.axes[0].images[0].get_array())
    assert drawn.shape == (667, 667) and drawn.dtype == np.float32  # was the 2,001 x 2,001 float64 shares
    assert drawn[7 // 3, 1900 // 3] == 1.0 and drawn[7 // 3, 7 // 3] == 1.0  # 6 and 8 are right: a lit diagonal
    assert figure.axes[0].images[0].get_extent() == [-0.5, count - 0.5, count - 0.5, -0.5]  # ticks at class ids


def test_long_class_names_are_drawn_by_start_and_end_apart_and_no_warning_reaches_the_user(tmp_path):
    names = [f"{word}{KITCHEN}" for word in ("dog", "cat", "cow", "yes", "no")]
    matrix = speaker_matrix(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_confusion_matrix(speaker_matrix(7), names + ["x" * 200 + "A", "x" * 200 + "B"], tmp_path / "cm.png")
        plot_confusion_matrix(speaker_matrix(12), [f"short{i}" for i in range(9)] +
                              [("a_very_long_descriptive_label_" * 7)[:199] + c for c in "ABC"], tmp_path / "12.png")
    assert [str(w.message) for w in caught] == []  # was "UserWarning: Tight layout not applied" with a path
    ticks = [t.get_text() for t in confusion_figure(matrix, names).axes[0].get_xticklabels()]
    assert len(set(ticks)) == 5 and all(len(t) <= 24 for t in ticks)  # all read "…running_" at the figure's edge
    assert [t.split("_")[0] for t in ticks] == ["dog", "cat", "cow", "yes", "no"] and ticks[0].endswith("running_")


def test_three_hundred_speakers_of_222_characters_leave_the_heat_map_its_room():
    count = 300
    names = [f"speaker{i:03d}{KITCHEN}" for i in range(count)]
    figure = confusion_figure(speaker_matrix(count), names)
    figure.tight_layout()
    assert figure.axes[0].get_position().width > 0.4  # was 0.15: the names took the rest
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks[1].startswith("speaker005") and len(ticks[1]) <= 24
    pairs = [t.get_text() for t in figure.axes[1].get_yticklabels()]
    assert all(line.startswith("speaker") and len(line) < 70 for line in pairs)


def many_label_prediction(count: int, lit: list[int], windows: int = 24) -> tuple[Prediction, list[str]]:
    """Windows of low noise where the `lit` labels take turns at 0.9 and label 3 stays at 0.5 (second)."""
    rng = np.random.default_rng(0)
    labels = [f"speaker_{i:04d}{KITCHEN}" for i in range(count)]
    rows = []
    for i in range(windows):
        scores = (rng.random(count) * 0.05).astype(np.float32)
        scores[lit[i % len(lit)]], scores[3] = 0.9, 0.5
        rows.append(WindowResult(i, i * 0.5, i * 0.5 + 1.0, scores))
    return Prediction("/audio/a meeting.wav", [labels[lit[0]]], [0.9], windows, [], windows=rows), labels


def test_a_timeline_of_a_thousand_labels_draws_the_labels_its_windows_ranked_named(tmp_path):
    from PIL import Image

    prediction, labels = many_label_prediction(1000, lit=[17, 400, 401, 950])
    paths = write_timeline(prediction, SimpleNamespace(id2label=dict(enumerate(labels))), tmp_path, "a", top_k=2)
    assert Image.open(paths["png"]).size[1] < 800  # was 2,400 pixels, 2.4 a label, every 17th named
    assert len(json.loads(paths["json"].read_text())["labels"]) == 1000  # the JSON still holds every label
    from hfspeech.inference.timeline import timeline_figure

    axes = timeline_figure(prediction, labels, np.stack([w.scores for w in prediction.windows]), top_k=2).axes[0]
    names = [t.get_text() for t in axes.get_yticklabels()]
    assert [name[:12] for name in names] == [f"speaker_{i:04d}" for i in (3, 17, 400, 401, 950)]
    assert "5 of 1000 labels drawn (in a window's top 2" in axes.get_title()


def test_a_timeline_whose_windows_rank_too_many_labels_draws_the_highest_peaks(tmp_path):
    from hfspeech.inference.timeline import MAX_TIMELINE_ROWS, timeline_figure

    prediction, labels = many_label_prediction(500, lit=list(range(100, 300)), windows=200)
    prediction.windows[0].scores[250] = 0.95  # the highest peak of all
    for window in prediction.windows[100:]:
        window.scores[window.scores == 0.9] = 0.6  # the lit labels of later windows peak lower
    scores = np.stack([w.scores for w in prediction.windows])
    axes = timeline_figure(prediction, labels, scores, top_k=2).axes[0]
    names = [t.get_text()[:12] for t in axes.get_yticklabels()]
    assert names == [f"speaker_{i:04d}" for i in [*range(100, 100 + MAX_TIMELINE_ROWS - 1), 250]]  # by label
    assert f"{MAX_TIMELINE_ROWS} of 500 labels drawn" in axes.get_title()  # 201 ranked: 3 (0.5) and 299 (0.6) not


@pytest.fixture(scope="module")
def speaker_model(tmp_path_factory) -> dict:
    """A random 6,000-speaker CNN whose names run to 75 characters, and a 3-second clip (several windows)."""
    import soundfile as sf

    from tests.conftest import save_random_baseline

    root = tmp_path_factory.mktemp("speakers36")
    labels = [f"speaker_{i:04d}{KITCHEN[:63]}" for i in range(6000)]
    model = save_random_baseline(root / "model", "cnn", labels, 0.5, n_mels=16, conv_channels=[4, 8],
                                 max_length_seconds=0.5)  # six windows
    clip = root / "clip.wav"
    sf.write(clip, np.random.default_rng(0).uniform(-0.3, 0.3, 48000).astype(np.float32), 16000)
    return {"model": model, "clip": clip, "labels": labels}


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
def test_the_serve_page_of_6000_speakers_draws_the_ranked_rows_and_clips_long_names(speaker_model, tmp_path):
    """The canvas was 14 px for each of 6,000 labels (84,000 px, past the browser's limit: nothing drawn), and a
    name over ~20 characters ran out of its column over the bar."""
    import requests
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from test_multilabel_answers31 import served

    labels = speaker_model["labels"]
    with served(speaker_model["model"]) as url, sync_playwright() as playwright:
        answer = requests.post(f"{url}/?timeline=true&top_k=3", data=speaker_model["clip"].read_bytes(),
                               headers={"Content-Type": "audio/wav"}, timeout=60).json()
        ranked = sorted({label for w in answer["windows"] for label in w["labels"]}, key=labels.index)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        expect(page.locator("#model-info")).to_contain_text("6000 labels")
        page.fill("#top-k", "3")
        page.set_input_files("#file", str(speaker_model["clip"]))
        expect(page.locator("#timeline-section")).to_be_visible()
        shown = page.locator("#result .label")
        assert shown.evaluate_all("spans => spans.map(s => s.title)") == shown.all_text_contents()
        label_box, bar_box = shown.first.bounding_box(), page.locator("#result .bar").first.bounding_box()
        gap = {"x": label_box["x"] + label_box["width"] + 1, "y": label_box["y"],
               "width": bar_box["x"] - label_box["x"] - label_box["width"] - 2, "height": label_box["height"]}
        page.screenshot(path=str(tmp_path / "gap.png"), clip=gap)
        assert np.asarray(Image.open(tmp_path / "gap.png").convert("L")).min() > 200  # no text between the two
        height, lit = page.evaluate("""() => { const c = document.getElementById('timeline');
            const pixels = c.getContext('2d').getImageData(180, 0, c.width - 180, c.height).data;
            let lit = 0; for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) lit++;
            return [c.height, lit]; }""")
        assert height == 18 * len(ranked) and lit > 0  # was 84,000 px and not one pixel drawn
        expect(page.locator("#timeline-caption")).to_contain_text(
            f"{len(ranked)} labels, those in some window's top-3; {6000 - len(ranked)} of the model's 6000")
        box = page.locator("#timeline").bounding_box()
        page.mouse.move(box["x"] + 50, box["y"] + 3)
        assert page.locator("#timeline").get_attribute("title") == ranked[0]  # the full name of the first row
        browser.close()
