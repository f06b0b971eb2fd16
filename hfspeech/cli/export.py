"""`hfspeech export`: deployment files (ONNX, optionally int8, or TorchScript) beside a saved model."""

from __future__ import annotations

import argparse

from hfspeech.cli.common import model_first, reported_as_user_errors
from hfspeech.cli.flags import CliParser
from hfspeech.cli.hub import add_held_out_flags, check_held_out_flags
from hfspeech.output_folders import check_output_folder


def export_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="hfspeech export",
        description="Export a saved model for deployment: ONNX through optimum (optionally int8 with onnxruntime) "
        "or TorchScript, with config.json and preprocessor_config.json beside it, so `hfspeech predict` runs it.",
    )
    parser.add_argument("model", help="model folder (a training run's output_dir; --model MODEL works too, as on "
                        "evaluate)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx",
                        help="onnx (through optimum; `--quantize` for int8) or torchscript")
    parser.add_argument("--quantize", choices=["int8", "int8_weights"], default=None,
                        help="also write an int8 model_quantized.onnx: int8 = integer compute (dynamic, for size; "
                        "static with --calibration_dir, faster than fp32 for the CNN on CPU, not for BC-ResNet); "
                        "int8_weights = int8 convolution weights, float compute (as fast as the float model)")
    parser.add_argument("--calibration_dir", default=None,
                        help="audio folder (e.g. the training data) to calibrate static int8 quantization on")
    parser.add_argument("--eval_dir", default=None, help="held-out audio folder DIR/<label>/*.wav (or a path,label "
                        "manifest): measure the int8 model's accuracy and top-1 agreement against the original, "
                        "and refuse it if it loses more than --max_accuracy_drop points; a multi-label model's: "
                        "any audio folder, its label decisions (at its thresholds) compared with the original's, "
                        "changes counted against the decisions active in either model")
    add_held_out_flags(parser)
    parser.add_argument("--max_accuracy_drop", type=float, default=1.0, help="accuracy points int8 may lose (a "
                        "multi-label model: the percent of its label decisions active in either model that int8 may "
                        "change)")
    parser.add_argument("--min_agreement", type=float, default=None, help="also refuse an int8 model whose top-1 "
                        "labels agree with the original's on fewer than this percent of the --eval_dir clips (e.g. "
                        "99; single-label models; none by default: accuracy alone)")
    parser.add_argument("--force", action="store_true", help="keep an int8 model that fails the --eval_dir check")
    parser.add_argument("--output", "--output_dir", default=None,  # --output_dir: the other commands' name
                        help="output folder (default: MODEL/onnx or MODEL/torchscript)")
    return parser


def check_export_output(output: str | None) -> None:
    """`--output` may not be a file, nor a folder holding files of the user's (a model's own folder among them)
    that an export would mix with, or overwrite (config.json); new, empty or an earlier export (which exporting
    again replaces) is fine. One `error:` line, like every command's output-folder refusal. The export files'
    names are imported here, not with the module: `inference.backends` imports numpy, which `--help` needs not."""
    from hfspeech.inference.backends import ONNX_FILES, TORCHSCRIPT_FILE

    export_files = {*ONNX_FILES, TORCHSCRIPT_FILE}  # what marks an earlier export's folder
    if output:
        check_output_folder(output, "--output", ours=export_files.__contains__, earlier="an earlier export", model=True)


def warn_about_int8_check(record: dict) -> None:
    """What the gate recorded in `int8_check.json` that the user must not miss: a kept failure, measured clips
    the model trained on. Printed after the numbers, to stderr as every warning."""
    import sys

    from hfspeech.models.config_json import INT8_CHECK_FILE

    if record["kept_by_force"]:
        print(f"warning: the int8 model failed the check and was kept (--force); {INT8_CHECK_FILE} says so",
              file=sys.stderr)
    for warning in record["data_warnings"]:
        print(f"warning: int8 check: {warning}", file=sys.stderr)


def check_eval_dir(model: str, eval_dir: str, label_depth: int | None = None,
                   skip_bad_files: bool = False) -> tuple[list[str], list[str]] | None:
    """The int8 gate's clips (paths, labels), read as training reads a folder (`inference.agreement.labelled_clips`:
    `--label_depth`, `--skip_bad_files`) and checked against the model's labels before exporting: the gate runs
    after the export, and a folder it cannot use (no audio, labels the model lacks, a corrupt file) would otherwise
    stop it with the int8 file written and unchecked. The gate measures on this listing. A multi-label model's
    folder is any audio folder, its names unread (not label sets; its labels ''). A model folder without a readable
    config is left for the export to report (None)."""
    from hfspeech.inference.agreement import held_out_labels, labelled_clips
    from hfspeech.models.config_json import read_config_json

    try:
        labels = held_out_labels(read_config_json(model))
    except (OSError, ValueError, AttributeError):
        return None
    return labelled_clips(eval_dir, labels, label_depth, skip_bad_files)


def export(argv: list[str]) -> int:
    parser = export_parser()
    args = parser.parse_args(model_first(argv))  # `--model RUN` as evaluate takes it
    if args.format != "onnx" and (args.quantize or args.calibration_dir):
        parser.error("--quantize and --calibration_dir apply to --format onnx only")
    if (args.calibration_dir or args.eval_dir) and not args.quantize:
        parser.error("--calibration_dir and --eval_dir need --quantize int8")
    if args.calibration_dir and args.quantize != "int8":
        parser.error("--calibration_dir calibrates --quantize int8 (int8_weights needs no calibration)")
    if not 0 <= args.max_accuracy_drop <= 100:
        parser.error(f"--max_accuracy_drop is in accuracy points, from 0 to 100, got {args.max_accuracy_drop:g}")
    if args.min_agreement is not None and (not 0 <= args.min_agreement <= 100 or not args.eval_dir):
        parser.error(f"--min_agreement is a percent of the --eval_dir clips (0 to 100, with --eval_dir), got "
                     f"{args.min_agreement:g}{'' if args.eval_dir else ' without --eval_dir'}")
    check_held_out_flags(parser, args, "--eval_dir", "--calibration_dir")
    check_export_output(args.output)

    # ValueError: a library's refusal, and the int8 gate's AccuracyGateError (the numbers that failed).
    with reported_as_user_errors(ValueError):
        # listed and checked before importing the exporters (seconds): a wrong folder is told at once
        clips = check_eval_dir(args.model, args.eval_dir, args.label_depth, args.skip_bad_files) \
            if args.eval_dir else None
        if args.format == "onnx":
            from hfspeech.export import export_onnx  # optimum and onnxruntime: not for a TorchScript export
            from hfspeech.inference.agreement import gate_int8

            gated = []  # the gate runs on the staged int8 file, before it is moved in (export_onnx's check_int8)
            check = (lambda int8_file: gated.append(gate_int8(args.model, int8_file, args.eval_dir,
                                                              args.max_accuracy_drop, args.force, clips,
                                                              args.min_agreement))
                     ) if args.eval_dir else None
            path = export_onnx(args.model, args.output, quantize=args.quantize, calibration_dir=args.calibration_dir,
                               check_int8=check, skip_bad_files=args.skip_bad_files)
            if args.eval_dir:
                comparison, record = gated[0]
                print(f"int8 check: {comparison.summary()}")
                warn_about_int8_check(record)
            elif args.quantize:
                print("int8 check: not measured (--eval_dir HELD_OUT measures the accuracy int8 costs)")
        else:
            from hfspeech.export import export_torchscript

            path = export_torchscript(args.model, args.output)
    for file in sorted(path.parent.iterdir()):
        print(f"{file}  ({file.stat().st_size / 1e6:.2f} MB)")
    if args.format == "onnx" and args.quantize:  # the folder's fp32 file is what a folder runs (inference.backends)
        import shlex

        print(f"to run the {args.quantize} model, name its file: hfspeech predict {shlex.quote(str(path))} AUDIO... "
              f"({path.parent} runs model.onnx, fp32)")
    return 0
