"""hfspeech on Windows and macOS, checked on Linux by taking away what they lack or adding what they refuse: no
`os.register_at_fork`, a file another program holds open (it cannot be deleted, replaced or renamed, nor a folder
above it), file names that collide without case or that Windows cannot make, flag files saved with a byte-order
mark, the Apple GPU, the busy-port probe and install hints that named apt-get only."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hfspeech.errors import OutputWriteError
from hfspeech.output_staging import written_beside

HELD = "The process cannot access the file because it is being used by another process"


def test_a_command_runs_where_there_is_no_fork(tmp_path, monkeypatch, capsys):
    """`sigterm_raises` called `os.register_at_fork` unconditionally: every command but serve was an AttributeError
    traceback on Windows."""
    from hfspeech.cli import main, termination

    monkeypatch.delattr(os, "register_at_fork")
    monkeypatch.setattr(termination, "_fork_hook", [])  # as in a fresh process: the hook not taken yet
    code = main(["demo-data", str(tmp_path / "dd"), "--kind", "events", "--num_clips", "4", "--no_progress"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "dd" / "labels.csv").is_file()


def held_open(monkeypatch, held: Path) -> None:
    """As Windows treats `held` while another program has it open: it cannot be deleted, replaced or renamed, nor
    can a folder above it be renamed (PermissionError, WinError 32)."""
    def blocked(path, dir_fd=None) -> bool:
        path = os.fsdecode(path)
        if dir_fd is not None and not os.path.isabs(path):
            path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        path = Path(os.path.abspath(path))
        return path == held or path in held.parents

    for name in ("replace", "rename"):
        def renamed(source, target, *args, real=getattr(os, name), **kwargs):
            if blocked(source, kwargs.get("src_dir_fd")) or blocked(target, kwargs.get("dst_dir_fd")):
                raise PermissionError(13, HELD, os.fsdecode(source))
            return real(source, target, *args, **kwargs)

        monkeypatch.setattr(os, name, renamed)
    for name in ("unlink", "remove", "rmdir"):
        def removed(path, *args, dir_fd=None, real=getattr(os, name), **kwargs):
            if blocked(path, dir_fd):
                raise PermissionError(13, HELD, os.fsdecode(path))
            return real(path, *args, dir_fd=dir_fd, **kwargs)

        monkeypatch.setattr(os, name, removed)


def files_under(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def write_output(folder: Path, version: str) -> None:
    """An output as export or stage writes one: files, a subfolder, a model moved in last."""
    (folder / "onnx").mkdir(parents=True)
    for name in ("config.json", "model.onnx", "onnx/model.onnx", "preprocessor_config.json", "README.md"):
        (folder / name).write_text(f"{version} {name}")


def is_model(name: str) -> bool:
    return name.endswith(".onnx")


@pytest.mark.parametrize("held", ["config.json", "model.onnx", "onnx/model.onnx", "README.md"])
def test_an_output_written_again_while_a_file_of_it_is_held_open_is_left_as_it_was(tmp_path, monkeypatch, held):
    """A re-export or re-stage on Windows with one file of the earlier output open in another program: the earlier
    entries were deleted first, then the first refused replace threw the new copies away: `stage` left the old
    README.md without the model, `export` deleted the earlier model_quantized.onnx. Now nothing is lost: one line
    names the file, and the earlier output is byte for byte as it was, with no hidden entry left."""
    output = tmp_path / "out"
    with written_beside(output) as new:
        write_output(new, "earlier")
    (output / "model_quantized.onnx").write_text("earlier int8")  # an earlier entry the new output does not have
    earlier = files_under(output)
    held_open(monkeypatch, output / held)
    refused = re.escape(f"{output / held.split('/')[0]}: cannot be replaced ({HELD}); another program may hold")
    with pytest.raises(OutputWriteError, match=f"^{refused} (it|a file in it) open .* is unchanged$"):
        with written_beside(output, last=is_model) as new:
            write_output(new, "new")
    assert files_under(output) == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not list(output.rglob(".*"))


@pytest.mark.parametrize("refused", ["the second set aside", "the model moved in"])
def test_a_rename_refused_half_way_puts_every_earlier_entry_back(tmp_path, monkeypatch, refused):
    """Refused once some earlier entries are set aside, or once the new ones are in but the model: each earlier
    entry is put back and each new one taken out."""
    output = tmp_path / "out"
    with written_beside(output) as new:
        write_output(new, "earlier")
    earlier = files_under(output)
    real_replace, calls = os.replace, []

    def replace(source, target):
        if Path(source) == output:  # a folder that cannot be renamed (held, a mount point): entry by entry
            raise PermissionError(13, HELD, str(source))
        calls.append(target)
        aside = [call for call in calls if ".hfspeech-old-" in str(call)]
        if refused == "the second set aside" and len(aside) == 2 and target == aside[-1] or \
                refused == "the model moved in" and ".hfspeech-new-" in str(source) and target == output / "model.onnx":
            raise PermissionError(13, HELD, str(source))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputWriteError, match="is unchanged$"):
        with written_beside(output, last=is_model) as new:
            write_output(new, "new")
    assert files_under(output) == earlier and not list(output.rglob(".*"))


def test_an_earlier_entry_that_cannot_be_deleted_keeps_the_new_output(tmp_path, monkeypatch):
    """Set aside, an earlier entry the new output lacks would not be deleted: the new output stays in, the entry goes
    back under its name, and the line says so (what test_entry_by_entry29 checks, where the move deletes now)."""
    output = tmp_path / "out"
    with written_beside(output) as new:
        write_output(new, "earlier")
    (output / "model_quantized.onnx").write_text("earlier int8")
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if Path(os.fsdecode(path)).name.startswith(".model_quantized.onnx.hfspeech-old-"):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_unlink(path, *args, **kwargs)

    def replace(source, target, real=os.replace):
        if Path(source) == output:
            raise OSError(16, "Device or resource busy", str(source))
        real(source, target)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputWriteError, match=re.escape(f"{output / 'model_quantized.onnx'}: cannot be removed (Per")):
        with written_beside(output, earlier=lambda name: True, last=is_model) as new:
            write_output(new, "new")
    got = files_under(output)
    assert got.pop("model_quantized.onnx") == b"earlier int8" and set(got.values()) == {
        f"new {name}".encode() for name in got} and len(got) == 5 and not list(output.rglob(".*"))


@pytest.mark.parametrize("keywords, said", [
    (["go", "Yes", "yes"], "keywords 'Yes' and 'yes' differ only in case (or Unicode composition): their class "
                           "folders would be one on macOS and Windows"),
    (["go", "Zo\u00eb", "ZO\u00cb"], "differ only in case (or Unicode composition)"),
    (["go", "CON"], "keyword 'CON' names its class folder, and it is a device on Windows"),
    (["go", "nul"], "it is a device on Windows"), (["go", "Lpt9"], "it is a device on Windows"),
    (["go", "yes "], "Windows drops a dot or a space at the end of a file name")])
def test_keywords_that_would_share_a_folder_or_name_none_on_windows_are_refused(tmp_path, capsys, keywords, said):
    """`demo-data dd --keywords Yes yes CON` made three folders on Linux; on macOS and Windows `yes` wrote into
    `Yes/` and the run ended on a RuntimeError traceback ("expected N clips, found N"), and CON is the console."""
    from hfspeech.cli import main

    code = main(["demo-data", str(tmp_path / "dd"), "--keywords", *keywords, "--clips_per_class", "1"])
    err = capsys.readouterr().err
    assert code == 2 and said in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "dd").exists()


def test_a_name_usable_everywhere():
    from hfspeech.path_names import not_portable, same_on_macos_and_windows

    assert [name for name in ("CON", "aux.txt", "Com1", "LPT\u00b2", "a:b", "what?", "tab\t", "end.", "end ", "..")
            if not_portable(name) is None] == []
    assert [name for name in ("yes", "CONSOLE", "NULL", "COM10", "a.b", "Zo\u00eb", "left right")
            if not_portable(name) is not None] == []
    assert same_on_macos_and_windows(["Alice", "bob", "ALICE"]) == ("Alice", "ALICE")
    assert same_on_macos_and_windows(["Zo\u00eb", "zoe\u0308"]) == ("Zo\u00eb", "zoe\u0308")  # macOS stores the second
    assert same_on_macos_and_windows(["a", "b", "a"]) == ("a", "a") and same_on_macos_and_windows(["a", "b"]) is None


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])  # Notepad; PowerShell 5's `>`
@pytest.mark.parametrize("suffix", [".args", ".json"])
def test_flag_files_saved_by_windows_tools_are_read(tmp_path, encoding, suffix):
    """Notepad's byte-order mark was read as part of the first flag (`['\\ufeff--model_type', 'cnn'] follow(s) no
    flag`), a JSON file with one was refused, and PowerShell 5's UTF-16 "cannot be read as text"."""
    from hfspeech.training.command_line import parse_args

    text = {".args": "--num_train_epochs 2\r\n--learning_rate 0.5\r\n",
            ".json": '{"num_train_epochs": 2,\r\n "learning_rate": 0.5}\r\n'}[suffix]
    flags = tmp_path / f"flags{suffix}"
    flags.write_bytes((("\ufeff" if encoding == "utf-16-be" else "") + text).encode(encoding))
    assert flags.read_bytes()[:2] in (b"\xef\xbb", b"\xff\xfe", b"\xfe\xff")  # each with its byte-order mark
    _, _, training_args = parse_args(["--args_file", str(flags), "--output_dir", str(tmp_path / "out")])
    assert (training_args.num_train_epochs, training_args.learning_rate) == (2, 0.5)


def test_a_flag_file_in_another_encoding_says_how_to_save_it(tmp_path):
    from hfspeech.errors import UsageError
    from hfspeech.training.command_line import parse_args

    flags = tmp_path / "flags.args"
    flags.write_bytes("--output_dir caf\u00e9\n".encode("cp1252"))
    with pytest.raises(UsageError, match=re.escape(f"{flags}: --args_file is not UTF-8 text (byte 0xe9 at offset 16, "
                                                   "e.g. Windows-1252): save it as UTF-8")):
        parse_args(["--args_file", str(flags)])


def test_an_apple_gpu_is_picked_where_there_is_no_cuda(monkeypatch):
    """predict, evaluate, stream and serve picked CUDA or the CPU: on an Apple laptop they ran on the CPU while
    `train` (transformers) used the GPU. Only the choice is checked here: no model runs on MPS on this machine."""
    import numpy as np
    import torch

    from hfspeech.inference.backends import TorchBackend, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == torch.device("mps") and pick_device(device="cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")  # CUDA first, where a machine has both
    on_mps = object.__new__(TorchBackend)  # (its model is never moved: MPS is not here)
    on_mps.device, on_mps.dtype = torch.device("mps"), None
    assert on_mps.float_dtype(np.zeros(2, np.float64)) == torch.float32  # MPS has no float64
    assert on_mps.float_dtype(np.zeros(2, np.float32)) is None and on_mps.float_dtype(np.zeros(2, np.int32)) is None


def test_the_busy_port_probe_binds_exclusively_on_windows(monkeypatch):
    """`serve` probed --port with SO_REUSEADDR, which on Windows lets a bind take a port another program listens
    on: the probe passed, and uvicorn failed after the model had loaded. Windows has SO_EXCLUSIVEADDRUSE for it
    (its value stood in for here: Linux has no such option, so it is recorded, not set)."""
    import socket

    from hfspeech.cli.serve import check_address

    options = []

    class Probe(socket.socket):
        def setsockopt(self, level, option, value):
            options.append(option)

    monkeypatch.setattr(socket, "socket", Probe)
    check_address("127.0.0.1", 0)
    monkeypatch.setattr(socket, "SO_EXCLUSIVEADDRUSE", -5, raising=False)
    check_address("127.0.0.1", 0)
    assert options == [socket.SO_REUSEADDR, -5]


@pytest.mark.parametrize("platform, ffmpeg, libsndfile", [
    ("linux", "(apt-get install ffmpeg;", "install libsndfile1 (apt-get install libsndfile1)"),
    ("darwin", "(brew install ffmpeg;", "pip install --force-reinstall soundfile"),
    ("win32", "conda install -c conda-forge ffmpeg;", "pip install --force-reinstall soundfile")])
def test_install_hints_name_this_systems_way(platform, ffmpeg, libsndfile):
    """A machine without FFmpeg (or libsndfile) was told `apt-get install ...` on macOS and Windows too."""
    from hfspeech.data.system_libraries import needs_ffmpeg, needs_libsndfile

    assert ffmpeg in needs_ffmpeg(platform) and libsndfile in needs_libsndfile(platform)
    assert ("apt-get" in needs_ffmpeg(platform) + needs_libsndfile(platform)) == (platform == "linux")
