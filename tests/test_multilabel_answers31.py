"""A multi-label answer lists every active label (session 31): serve's answer (the Hub's task API, and the page's
timeline form) and `hfspeech predict`'s JSON, printed lines and CSV rows add each label active for the file
that ranks below the top k; serve's softmax / raw-logit scores judge no label active (the thresholds are on the
sigmoid scale), as the pipeline does; a multi-label CSV row's `label` is its best active label, empty when
none is.

The model is a random-weight 6-label CNN: on `clip.wav` its sigmoids rank `rain` last (0.267), and `rain`'s
threshold of 0.25 is the only one it reaches (the others are at 0.95, above every score).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from huggingface_hub import AudioClassificationOutputElement

from hfspeech.cli import main as cli
from hfspeech.serve.app import ServeSettings, create_app
from tests.conftest import save_random_baseline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
LABELS = ["alarm", "bark", "engine", "rain", "speech", "wind"]
RANKED = ["engine", "alarm", "bark", "wind", "speech", "rain"]  # on clip.wav, best first
HERE = "http://127.0.0.1:8080"
CHROMIUM = "/usr/bin/chromium"


def with_thresholds(model: Path, folder: Path, thresholds: dict) -> Path:
    """A copy of `model` whose config.json holds `thresholds` as its tuned `label_thresholds`."""
    shutil.copytree(model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["label_thresholds"] = thresholds
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """`rain`: only `rain` (ranked last) active on clip.wav; `strict`: no label active; and the clip."""
    root = tmp_path_factory.mktemp("multilabel31")
    model = save_random_baseline(root / "random", "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8],
                                 problem_type="multi_label_classification")
    sf.write(root / "clip.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32), 16000)
    strict = {label: 0.95 for label in LABELS}
    return {"rain": with_thresholds(model, root / "rain", {**strict, "rain": 0.25}),
            "strict": with_thresholds(model, root / "strict", strict), "clip": root / "clip.wav"}


@pytest.fixture(scope="module")
def client(models):
    from starlette.testclient import TestClient

    settings = ServeSettings(model=str(models["rain"]), request_timeout=10.0, allowed_hosts=[])
    with TestClient(create_app(settings), base_url=HERE) as running:
        assert running.get("/info").status_code == 200  # waits for the model
        yield running


def test_serve_answer_adds_an_active_label_ranked_past_top_k(client, models):
    clip = models["clip"].read_bytes()
    answer = client.post("/", content=clip, headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 200, answer.text
    entries = AudioClassificationOutputElement.parse_obj_as_list(answer.content)  # as InferenceClient reads it
    assert [e.label for e in entries] == RANKED  # the default top 5, then rain
    assert [e.label for e in entries if e.active] == ["rain"] and entries[-1].threshold == 0.25
    short = client.post("/?top_k=2", content=clip).json()
    assert [(e["label"], e["active"]) for e in short] == [("engine", False), ("alarm", False), ("rain", True)]
    assert short[-1]["score"] == pytest.approx(0.2666, abs=1e-3)
    timeline = client.post("/?top_k=2&timeline=true", content=clip).json()  # what the web page draws
    assert [e["label"] for e in timeline["predictions"]] == ["engine", "alarm", "rain"]
    assert timeline["active_labels"] == ["rain"]


@pytest.mark.parametrize("function", ["softmax", "none"])
def test_serve_judges_no_label_active_on_softmax_or_logits(client, models, function):
    """Thresholds tuned on sigmoids, compared with a softmax or a logit, said `active: false` for labels active
    at their sigmoid score (and `true` for logits over the threshold); the pipeline leaves `active` out."""
    clip = models["clip"].read_bytes()
    answer = client.post(f"/?top_k=2&function_to_apply={function}", content=clip).json()
    assert [e["label"] for e in answer] == ["engine", "alarm"]
    assert all(set(entry) == {"label", "score"} for entry in answer)
    timeline = client.post(f"/?top_k=2&function_to_apply={function}&timeline=true", content=clip).json()
    assert timeline["active_labels"] == [] and all(w["active_labels"] == [] for w in timeline["windows"])
    sigmoid = client.post("/?top_k=2&function_to_apply=sigmoid", content=clip).json()
    assert [e["label"] for e in sigmoid if e["active"]] == ["rain"]  # the model's own scores: judged as by default


def predict_output(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["predict", *argv]) == 0
    return out.getvalue()


def test_predict_json_and_lines_list_an_active_label_ranked_past_top_k(models):
    row = json.loads(predict_output(str(models["rain"]), str(models["clip"]), "--json", "--top_k", "3"))
    assert [p["label"] for p in row["predictions"]] == ["engine", "alarm", "bark", "rain"]
    assert row["active_labels"] == ["rain"] and row["predictions"][-1]["score"] == pytest.approx(0.2666, abs=1e-3)
    line = predict_output(str(models["rain"]), str(models["clip"]), "--top_k", "1")
    assert "engine (0.879), rain (0.267)  active: rain" in line


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_predict_csv_label_is_the_best_active_label_or_empty_and_resumes(models, tmp_path):
    """A row read `label=engine` beside empty `active_labels`; now `label` is what the model says is there."""
    clip = str(models["clip"])
    (rain,) = csv_rows(predict_output(str(models["rain"]), clip, "--output", "-", "--format", "csv", "--top_k", "1"))
    assert (rain["label"], rain["labels"], rain["active_labels"]) == ("rain", "engine|rain", "rain")
    assert float(rain["score"]) == pytest.approx(0.2666, abs=1e-3)
    output = tmp_path / "preds.csv"
    predict_output(str(models["strict"]), clip, "--output", str(output))
    (none,) = csv_rows(output.read_text(encoding="utf-8"))
    assert (none["label"], none["score"], none["active_labels"], none["labels"]) == ("", "", "", "engine|alarm|bark")
    other = tmp_path / "other.wav"
    shutil.copy(clip, other)
    predict_output(str(models["strict"]), clip, str(other), "--output", str(output))  # resumed: one row added
    assert [row["path"] for row in csv_rows(output.read_text(encoding="utf-8"))] == [clip, str(other)]


@contextlib.contextmanager
def served(model: Path):
    """The app on a free loopback port, in a thread of this process: torch and transformers are already loaded
    here, where a `hfspeech serve` subprocess took most of 20 s to import them."""
    import threading

    import uvicorn

    from hfspeech.serve.launcher import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ServeSettings(model=str(model))), port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):  # up to 20 s for the socket to listen
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: `apt-get install chromium` (scripts/setup.sh)")
def test_web_page_shows_an_active_label_ranked_past_top_k(models):
    """The page draws the answer's rows: with top-k 2, `rain` (active, sixth) is a third, green row."""
    from playwright.sync_api import expect, sync_playwright

    with served(models["rain"]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.goto(url)
        expect(page.locator("#model-info")).to_contain_text("6 labels")
        page.fill("#top-k", "2")
        page.set_input_files("#file", str(models["clip"]))
        expect(page.locator("#result .row")).to_have_count(3)
        assert page.locator("#result .label").all_text_contents() == ["engine", "alarm", "rain"]
        assert page.locator("#result .row.active .label").all_text_contents() == ["rain"]
        expect(page.locator("#status")).to_contain_text("active: rain")
        browser.close()


@pytest.mark.parametrize("function", ["softmax", "none"])
def test_serve_refuses_votes_on_scores_off_the_thresholds_scale(client, models, function):
    """A multi-label model's windows vote at its thresholds (sigmoid scale): with all thresholds 0.25 one window's
    sigmoids voted for 6 labels, its softmax for 1 and its logits for 4, each answered as shares without a word."""
    clip = models["clip"].read_bytes()
    answer = client.post(f"/?aggregate=vote&function_to_apply={function}", content=clip)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert f"aggregate=vote with function_to_apply={function}" in error and "sigmoid scale" in error
    body = {"inputs": base64.b64encode(clip).decode(), "parameters": {"aggregate": "vote",
                                                                      "function_to_apply": function}}
    assert client.post("/", json=body).status_code == 400  # InferenceClient's JSON, the same
    voted = client.post("/?aggregate=vote&function_to_apply=sigmoid&top_k=1", content=clip).json()
    assert [(e["label"], e["score"], e["active"]) for e in voted] == [("rain", 1.0, True)]  # its own scale votes


def test_a_single_label_models_vote_is_answered_on_every_scale(tmp_path, models):
    """Its windows vote for their top label, the same label on softmax, sigmoid and logits: nothing to refuse."""
    from starlette.testclient import TestClient

    model = save_random_baseline(tmp_path / "single", "cnn", LABELS, 0.5, n_mels=16, conv_channels=[4, 8])
    settings = ServeSettings(model=str(model), request_timeout=10.0, allowed_hosts=[])
    with TestClient(create_app(settings), base_url=HERE) as running:
        answers = [running.post(f"/?aggregate=vote&top_k=1&function_to_apply={function}",
                                content=models["clip"].read_bytes()) for function in ("softmax", "none", "sigmoid")]
    assert [answer.status_code for answer in answers] == [200] * 3
    assert len({json.dumps(answer.json()) for answer in answers}) == 1 and answers[0].json()[0]["score"] == 1.0
