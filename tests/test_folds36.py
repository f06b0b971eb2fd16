"""Costs that grew with the data (audit SC): the multi-label start-up check of `--metric_for_best_model` made a
made-up evaluation of 2L x L scores (6,000 labels: 26 s and 6.9 GB before training), and `hfspeech cross-validate`
on 500 speakers started 500 trainings without a word; `--num_folds K` deals the groups into K folds instead."""

from __future__ import annotations

import csv
import json
import logging
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from transformers import EvalPrediction, PretrainedConfig, TrainingArguments

from hfspeech.cli import main as cli
from hfspeech.errors import UsageError
from hfspeech.evaluation.metrics import make_compute_metrics, metric_names
from hfspeech.training.cross_validation import drawn_folds, write_fold_manifests
from hfspeech.training.fold_manifests import deal_groups
from hfspeech.training.trainer import check_best_model_metric
from tests.test_distill_cv_audit import cross_validate, write_speaker_manifest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def compute_metrics_of(num_labels: int, multi_label: bool):
    problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    return make_compute_metrics(num_labels, PretrainedConfig(num_labels=num_labels, problem_type=problem_type))


@pytest.mark.parametrize("num_labels, multi_label", [(1, True), (2, False), (2, True), (7, False), (7, True)])
def test_the_metric_names_are_those_a_real_evaluation_reports(num_labels, multi_label):
    compute_metrics = compute_metrics_of(num_labels, multi_label)
    rng = np.random.default_rng(num_labels)
    logits = rng.normal(size=(16, num_labels))
    labels = ((rng.random((16, num_labels)) < 0.4).astype(np.float64) if multi_label
              else rng.integers(0, num_labels, 16))
    reported = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert metric_names(compute_metrics, num_labels, multi_label) == set(reported)


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_metric_names_of_6000_labels_come_from_a_made_up_evaluation_linear_in_the_labels(multi_label):
    num_labels, shapes = 6000, []
    compute_metrics = compute_metrics_of(num_labels, multi_label)

    def recorded(prediction):  # the real compute_metrics, the size of what it was given noted
        shapes.append(np.shape(prediction.predictions))
        return compute_metrics(prediction)

    tracemalloc.start()
    try:
        names = metric_names(recorded, num_labels, multi_label)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ("map_macro" if multi_label else "accuracy") in names
    assert len(shapes) == 1 and np.prod(shapes[0]) <= 4 * num_labels  # was 2L x L: 72 million scores
    assert peak < 32 * 2**20  # one L x L float64 array alone is 275 MiB


def test_the_best_model_metric_of_a_multi_label_run_of_6000_labels_is_checked_against_its_names():
    compute_metrics = compute_metrics_of(6000, multi_label=True)
    args = TrainingArguments(output_dir="unused", metric_for_best_model="map_macro", eval_strategy="epoch",
                             report_to="none")
    check_best_model_metric(args, compute_metrics, 6000, multi_label=True)  # no error
    args.metric_for_best_model = "accuracy"
    with pytest.raises(UsageError, match=r"not a metric of this run; choose from .*'map_macro'"):
        check_best_model_metric(args, compute_metrics, 6000, multi_label=True)


def test_groups_are_dealt_into_folds_of_about_equal_clips_each_group_once_and_the_same_for_a_seed():
    sizes = {f"s{i:02d}": clips for i, clips in enumerate([40, 3, 3, 3, 5, 8, 8, 1, 2, 2, 9, 4, 4, 6, 7])}
    dealt = deal_groups(sizes, 3, seed=0)
    assert list(dealt) == ["1", "2", "3"] and all(held == sorted(held) for held in dealt.values())
    assert sorted(group for held in dealt.values() for group in held) == sorted(sizes)  # each group in one fold
    clips = sorted(sum(sizes[group] for group in held) for held in dealt.values())
    assert clips == [32, 33, 40] and ["s00"] in dealt.values()  # the 40-clip speaker alone, the others split evenly
    assert deal_groups(sizes, 3, seed=0) == dealt
    even = {f"s{i:02d}": 5 for i in range(12)}  # groups of one size: the seed draws which go together
    assert len({json.dumps(deal_groups(even, 4, seed)) for seed in range(5)}) > 1
    assert all(sorted(map(len, deal_groups(even, 4, seed).values())) == [3, 3, 3, 3] for seed in range(5))


def write_group_manifest(folder: Path, clips_per_group: list[int]) -> str:
    """A manifest of `len(clips_per_group)` speakers g00, g01 ... with that many rows each, all naming one clip."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "a.wav", np.zeros(800, dtype=np.float32), 16000)
    with open(folder / "all.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        for group, clips in enumerate(clips_per_group):
            writer.writerows(["a.wav", ("yes", "no")[i % 2], f"g{group:02d}"] for i in range(clips))
    return str(folder / "all.csv")


def test_dealt_folds_hold_out_whole_groups_listed_in_their_folders(tmp_path):
    manifest = write_group_manifest(tmp_path / "data", [2 + i % 3 for i in range(30)])
    paths, held_out = drawn_folds(manifest, "speaker", str(tmp_path / "cv"), 0.1, 0, label_column="label",
                                  num_folds=4)
    assert sorted(path.name for path in (tmp_path / "cv").iterdir()) == ["fold-1", "fold-2", "fold-3", "fold-4"]
    tested = Counter()
    for fold, files in paths.items():
        listed = (tmp_path / "cv" / f"fold-{fold}" / "manifests" / "held_out_groups.txt").read_text().split()
        test = [row["speaker"] for row in csv.DictReader(open(files["test"]))]
        train = {row["speaker"] for name in ("train", "validation") for row in csv.DictReader(open(files[name]))}
        assert listed == held_out[fold] == sorted(set(test)) and not train & set(test)
        tested.update(test)
    assert tested == Counter(row["speaker"] for row in csv.DictReader(open(manifest)))  # every clip tested once


def test_num_folds_as_many_as_the_groups_is_leave_one_group_out(tmp_path):
    manifest = write_group_manifest(tmp_path / "data", [2] * 21)
    folds = write_fold_manifests(manifest, "speaker", str(tmp_path / "cv"), 0.0, 0, num_folds=21)
    assert list(folds) == [f"g{i:02d}" for i in range(21)]
    assert not list((tmp_path / "cv").rglob("held_out_groups.txt"))  # the folder names its group


def test_leave_one_group_out_of_many_groups_is_refused_before_anything_is_written(tmp_path, capsys):
    manifest = write_group_manifest(tmp_path / "data", [2] * 21)
    assert cli(["cross-validate", "--train_file", manifest, "--group_column", "speaker", "--output_dir",
                str(tmp_path / "cv"), "--max_steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "21 groups in column 'speaker'" in error and "--num_folds 5" in error and "--num_folds 21" in error
    assert not (tmp_path / "cv").exists()


@pytest.mark.parametrize("num_folds", ["1", "4"])
def test_num_folds_the_groups_cannot_fill_is_refused(tmp_path, capsys, num_folds):
    manifest = write_speaker_manifest(tmp_path / "data")
    assert cross_validate(manifest, tmp_path / "cv", "--num_folds", num_folds) == 2
    assert f"--num_folds {num_folds}: give 2 to 3, the groups in column 'speaker'" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()


def test_num_folds_is_not_a_flag_of_train(tmp_path, capsys):
    manifest = write_speaker_manifest(tmp_path / "data")
    assert cli(["train", "--train_file", manifest, "--output_dir", str(tmp_path / "run"), "--num_folds", "2"]) == 2
    assert "--num_folds" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cross_validate_with_num_folds_summarises_the_dealt_folds_and_names_their_groups(tmp_path, caplog):
    manifest = write_speaker_manifest(tmp_path / "data", speakers=("ann", "bob", "cy", "dee"),
                                      labels=("yes", "no", "yes"))
    with caplog.at_level(logging.INFO, logger="hfspeech.cross_validate"):
        assert cross_validate(manifest, tmp_path / "cv", "--num_folds", "2") == 0
    summary = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert summary["complete"] and sorted(summary["folds"]) == ["1", "2"]
    groups = summary["held_out_groups"]
    assert sorted(groups) == ["1", "2"] and sorted(groups["1"] + groups["2"]) == ["ann", "bob", "cy", "dee"]
    assert [fold["num_test_clips"] for fold in summary["folds"].values()] == [6, 6]  # two speakers of 3 clips each
    assert summary["test_accuracy"]["folds"] == 2 and summary["pooled"]["num_clips"] == 12
    started = [record.getMessage() for record in caplog.records if record.getMessage().startswith("fold ")]
    assert started == [f"fold {fold}: {index} of 2 (holding out speaker: {', '.join(groups[fold])})"
                       for index, fold in enumerate(("1", "2"), start=1)]  # it read "speaker ann, bob"


def test_a_label_whose_groups_fell_into_one_dealt_fold_says_so_and_the_way_out(tmp_path):
    """The refusal said "every label needs clips in two groups or more" of a label that has them: dealt folds put
    both of its groups into one fold, which another --seed or --num_folds may not."""
    from hfspeech.errors import DataError

    manifest = tmp_path / "rare.csv"
    rows = [(f"s{group:02d}-{i}.wav", "rare" if group < 2 and i == 0 else "common", f"s{group:02d}")
            for group in range(12) for i in range(3)]
    manifest.write_text("path,label,speaker\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    refusals = []
    for seed in range(12):
        try:
            drawn_folds(str(manifest), "speaker", str(tmp_path / f"cv{seed}"), 0.0, seed, label_column="label",
                        write=False, num_folds=2)
        except DataError as error:
            refusals.append(str(error))
    assert refusals and len(refusals) < 12, refusals  # some deals part the two groups, some do not
    assert all("fell into this fold: give another --seed or --num_folds" in text for text in refusals), refusals
    assert not any("two groups or more" in text for text in refusals), refusals


def test_an_abbreviated_flag_keeps_the_meaning_it_had_before_num_folds():
    """`--num 3` was `--num_train_epochs 3`; the folds' own parser took it as `--num_folds 3`, training 10 epochs."""
    from hfspeech.training.cross_validation_args import parse_cross_validation_args

    folds, *_, training = parse_cross_validation_args(["--num", "3", "--train_file", "a.csv", "--group_column", "s",
                                                       "--output_dir", "cv"], prog="hfspeech cross-validate")
    assert (folds.num_folds, training.num_train_epochs) == (None, 3.0)
