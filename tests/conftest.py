"""Fixtures shared by all tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run as fast on one intra-op thread, which also cannot be oversubscribed on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(monkeypatch, capsys):
    """The `hwnas` command in this process: `cli(*args) -> (exit code, stdout, stderr)`."""
    import sys

    from hwnas.cli import main

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["hwnas", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as done:
            code = done.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
