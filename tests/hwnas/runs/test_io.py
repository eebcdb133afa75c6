"""Write faults: a full disk or a size limit is one line naming the file; earlier files stay intact."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys

import pytest
import yaml

from hwnas.contracts.errors import HwnasError
from hwnas.runs.io import atomic_write, atomic_write_text


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "free disk space"), (errno.EFBIG, "size limit"),
                                       (errno.EACCES, "writable output path")])
def test_an_os_error_while_writing_names_the_file_and_keeps_the_old_one(tmp_path, code, fix):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def fails(tmp):
        tmp.write_text("half")
        raise OSError(code, os.strerror(code))

    with pytest.raises(HwnasError) as err:
        atomic_write(target, fails)
    assert str(err.value).startswith(f"cannot write {target} ({os.strerror(code)}); ") and fix in str(err.value)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_failing_rename_is_named_too(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(HwnasError, match=r"cannot write .*x.json \(Permission denied\)"):
        atomic_write_text(tmp_path / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def _limited(limit_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process; ignored, write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def test_a_run_that_hits_a_file_size_limit_ends_in_one_line_and_keeps_what_it_wrote(tmp_path):
    """`ulimit -f` below a checkpoint's size: config.yaml and arch.json are written, the checkpoint is not."""
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "hwnas", "train", "--preset", "tiny", "--uniform", "naf", "--crop", "16", "--epochs", "1",
         "--steps-per-epoch", "1", "--batch-size", "1", "--out", str(run)],
        capture_output=True, text=True, preexec_fn=_limited(64 * 1024), timeout=300,
    )
    assert done.returncode == 1, done.stderr  # the OS refused: runtime, not usage
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {run / 'checkpoints' / 'last.pt'} (File too large); "), done.stderr
    assert "Traceback" not in done.stderr and sum(line.startswith("error:") for line in done.stderr.splitlines()) == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["spec"]["preset"] == "tiny"
    assert (run / "arch.json").is_file() and not list(run.rglob("*.tmp"))


def test_a_stray_os_error_is_one_line_with_its_file(monkeypatch, capsys):
    from hwnas.cli import main

    def vanished(space, image_size):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/gone.png")

    monkeypatch.setattr("hwnas.contracts.describe.describe_space", vanished)
    monkeypatch.setattr(sys, "argv", ["hwnas", "describe", "--preset", "tiny"])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    assert done.value.code == 1 and out == ""
    assert err.splitlines() == ["error: /data/gone.png: No such file or directory."]
