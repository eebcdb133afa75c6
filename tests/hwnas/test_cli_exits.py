"""One exit-status rule for every way a command fails (hwnas.cli.exits): usage 2, runtime and
I/O 1, service 3, interrupted 130; always one `error:`/`interrupted.` line last, no traceback."""

from __future__ import annotations

import errno
import os
import sys

import pytest

from hwnas.cli import exits, main
from hwnas.contracts.errors import HwnasError, RuntimeFailure, ServiceError
from hwnas.runs.io import atomic_write_text


def _full_disk(path):
    """A real write through hwnas.runs.io on a disk that is full (the OS error injected at the write)."""
    def write(tmp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    from hwnas.runs import io

    io.atomic_write(path, write)


def _raise(err):
    def fail(*args, **kwargs):
        raise err
    return fail


KINDS = [
    pytest.param(_raise(HwnasError("no space named 'x'; see `hwnas spaces`.")), 2, "error: no space named 'x'", id="a user's mistake"),
    pytest.param(lambda *a, **k: _full_disk("out/x.json"), 1, "error: cannot write out/x.json (No space left on device); free disk space", id="full disk"),
    pytest.param(_raise(RuntimeFailure("cannot write x.csv (Read-only file system); the file system is read-only.")), 1, "error: cannot write x.csv (Read-only", id="read-only"),
    pytest.param(_raise(PermissionError(errno.EACCES, "Permission denied", "/data/out")), 1, "error: /data/out: Permission denied.", id="stray OS refusal"),
    pytest.param(_raise(ServiceError("cannot reach Qualcomm AI Hub at https://x while looking up device; check the network.")), 3, "error: cannot reach Qualcomm AI Hub", id="service unreachable"),
    pytest.param(_raise(KeyboardInterrupt()), 130, "interrupted.", id="interrupted"),
]


@pytest.mark.parametrize("fail, code, last", KINDS)
def test_each_kind_of_failure_has_its_exit_status(tmp_path, monkeypatch, capsys, fail, code, last):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("hwnas.contracts.describe.describe_space", fail)
    monkeypatch.setattr(sys, "argv", ["hwnas", "describe", "--preset", "tiny"])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    assert done.value.code == code, err
    assert out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(last), err
    assert not list(tmp_path.rglob("*.tmp"))  # nothing half-written


def test_a_usage_error_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["hwnas", "describe", "--no-such-flag"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == exits.USAGE == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: no such option: --no-such-flag")


def test_an_os_refusal_turned_into_a_sentence_keeps_its_status(tmp_path):
    """hwnas.runs.io's sentence for a full disk is a RuntimeFailure: exit 1 like the bare OS error."""
    with pytest.raises(RuntimeFailure) as caught:
        _full_disk(tmp_path / "x.json")
    assert exits.status_of(caught.value) == exits.RUNTIME
    assert not list(tmp_path.iterdir())  # nothing half-written
    atomic_write_text(tmp_path / "y.json", "{}")  # the same call on a disk with room writes
    assert (tmp_path / "y.json").read_text() == "{}"
