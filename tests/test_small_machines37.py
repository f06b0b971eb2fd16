"""Small machines (audit LM): an error names what really ran out -- the disk of a temporary file or /dev/shm, not
the output folder on a disk with room (`errors.writing_to`, `written_elsewhere`); memory, in one line with the flags that lower it
(`cli.system_errors.out_of_memory`), not a traceback."""

import errno
import os
import tempfile

import pytest

from hfspeech.errors import OutputWriteError, writing_to

FULL = os.strerror(errno.ENOSPC)


def other_disks(tmp_path):
    """(a folder on /tmp's disk, a folder on /dev/shm's): two disks, as the audit's output and full tmpfs were."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no /dev/shm on a disk of its own here")
    return tmp_path, "/dev/shm"


def failed_write(output, failed_file) -> str:
    with pytest.raises(OutputWriteError) as raised, writing_to(output, "make room, or export elsewhere (--output)"):
        try:
            raise OSError(errno.ENOSPC, FULL, str(failed_file))
        except OSError:  # raised while handling it, as Arrow's after a full disk: the OSError found up the chain
            raise ValueError("I/O operation on closed file")
    return str(raised.value)


def test_a_full_tmpdir_on_another_disk_is_named_with_tmpdir_not_the_output(tmp_path, monkeypatch):
    here, shm = other_disks(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(here))
    said = failed_write(os.path.join(shm, "no-such-output-LX37"), here / "tmpab12" / "model.onnx")
    assert said == f"{here / 'tmpab12'}: cannot write ({FULL}); set TMPDIR to a writable folder with more room, " \
                   "and run again"


def test_a_write_into_a_temporary_folder_that_names_no_file_is_said_of_tmpdir(tmp_path, monkeypatch):
    """onnx writes the second graph and quantization's augmented model into TMPDIR, and its failed write names no
    file: the export's `writing_to` blamed the output folder (`exp: cannot write`, 62 GB free there). Those blocks
    are `temporary_writes` now."""
    from hfspeech.written_elsewhere import temporary_writes

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(OutputWriteError) as raised, writing_to(tmp_path / "exp", "export elsewhere (--output)"):
        with temporary_writes():
            raise OSError(errno.ENOSPC, FULL)  # as onnx's `data_file.write(...)`
    assert str(raised.value) == f"{tmp_path}: cannot write ({FULL}); set TMPDIR to a writable folder with more " \
                                "room, and run again"


def test_a_full_dev_shm_says_shm_size_or_fewer_workers(tmp_path):
    here, shm = other_disks(tmp_path)
    said = failed_write(here / "exp", os.path.join(shm, "sem.mp-x1"))
    assert said.startswith(f"/dev/shm: cannot write ({FULL}); /dev/shm is full") and "--shm-size" in said
    assert "fewer workers" in said and str(here) not in said


def test_a_file_in_the_output_or_on_its_disk_or_unknown_still_names_the_output(tmp_path):
    today = f"{tmp_path / 'exp'}: cannot write ({FULL}); make room, or export elsewhere (--output)"
    assert failed_write(tmp_path / "exp", tmp_path / "exp" / "model.onnx") == today
    assert failed_write(tmp_path / "exp", tmp_path / ".exp-partial-1" / "model.onnx") == today  # staged beside it
    with pytest.raises(OutputWriteError, match="^" + str(tmp_path / "exp")), writing_to(tmp_path / "exp", "x"):
        raise OSError(errno.ENOSPC, FULL)  # a write or close with no file name


CPU_ALLOCATOR = ("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 23347200 bytes. Error code 12 (Cannot allocate memory)")


def test_torch_cpu_allocator_failure_is_one_line_with_the_size_and_the_flags_that_lower_it():
    from hfspeech.cli.system_errors import out_of_memory

    said = str(out_of_memory(RuntimeError(CPU_ALLOCATOR), "train"))
    assert said == ("out of memory (tried to allocate 22.3 MB more); lower --per_device_train_batch_size / "
                    "--per_device_eval_batch_size, or use --dataloader_num_workers 0")
    assert "(tried to allocate 37252.9 GB more)" in str(out_of_memory(RuntimeError(CPU_ALLOCATOR.replace(
        "23347200", str(4 * 10 ** 13))), "train"))
    assert str(out_of_memory(MemoryError(), "predict")) == "out of memory; lower --batch_size"
    try:
        try:
            raise MemoryError()
        except MemoryError:
            raise ValueError("a library's error while handling it")
    except ValueError as wrapped:
        assert "--dataloader_num_workers 0" in str(out_of_memory(wrapped, "demo"))
    assert out_of_memory(RuntimeError("shape mismatch"), "train") is None and out_of_memory(ValueError(), "") is None


def test_cuda_out_of_memory_is_told_by_its_type_and_keeps_torchs_size():
    torch = pytest.importorskip("torch")
    from hfspeech.cli.system_errors import out_of_memory

    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.10 GiB total)")
    assert str(out_of_memory(error, "evaluate")) == "out of GPU memory (tried to allocate 20.00 MiB more); lower " \
                                                    "--batch_size"


def test_main_says_a_memory_error_in_one_line_and_exits_2(monkeypatch, capsys):
    import builtins

    import hfspeech.cli as cli

    imported = builtins.__import__

    def no_memory(command, args):  # the first step inside the catch-all's try: no model, no data
        builtins.__import__ = refused  # as short as the audit's: an import in the handler fails too
        raise MemoryError()

    def refused(*args, **kwargs):
        raise MemoryError("an import in the handler")

    monkeypatch.setattr(cli, "refuse_homeless_caches", no_memory)
    try:
        assert cli.main(["predict", "--model", "some-run", "clip.wav"]) == 2
    finally:
        builtins.__import__ = imported
    assert capsys.readouterr().err == "error: out of memory; lower --batch_size\n"


@pytest.mark.parametrize("said", [
    "DataLoader worker (pid 4242) is killed by signal: Killed. ",
    "DataLoader worker (pid 4242) is killed by signal: Bus error. It is possible that dataloader's workers are out "
    "of shared memory. Please try to raise your shared memory limit.",
    "DataLoader worker (pid(s) 4242) exited unexpectedly"])
def test_a_dataloader_worker_the_system_killed_is_one_line_with_the_way_out(said):
    """A worker killed by a container's memory cap, or by a full /dev/shm, was a traceback of torch's internals."""
    from hfspeech.cli.system_errors import machine_refusal

    try:
        raise RuntimeError(said)
    except RuntimeError as error:
        line = str(machine_refusal(error, "train"))
    assert line.startswith(said.split(". ")[0].rstrip(".") + ": a worker has memory of its own")
    assert "--dataloader_num_workers" in line and "--shm-size" in line
    assert machine_refusal(RuntimeError("DataLoader got a bad batch"), "train") is None
