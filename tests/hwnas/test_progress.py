"""Progress bars: drawn only on a terminal, erased before an error, never glued to the error line."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import skimage.io
import torch

from hwnas.cli import main
from hwnas.contracts.config import SpaceSpec
from hwnas.deploy.modelfile import ModelFile, save_model
from hwnas.contracts.space import Architecture, freeze, position_names


@pytest.fixture(scope="module")
def failing_eval(tmp_path_factory):
    """A tiny model and a test folder whose second image is not an image: eval fails mid-way."""
    root = tmp_path_factory.mktemp("progress")
    spec = SpaceSpec(preset="tiny")
    space = spec.create()
    arch = Architecture.uniform(space.name, position_names(space.build()), "cbr")
    torch.manual_seed(0)
    save_model(root / "model.pt", ModelFile(spec, arch, freeze(space, arch).state_dict()))
    (root / "test").mkdir()
    skimage.io.imsave(root / "test" / "a.png", np.zeros((24, 24, 3), np.uint8), check_contrast=False)
    (root / "test" / "b.png").write_text("not an image")
    return ["eval", "--model", str(root / "model.pt"), "--data", str(root / "test"), "--sigma", "25", "--out", str(root / "e.csv")]


def test_no_bar_is_drawn_when_stderr_is_not_a_terminal(failing_eval, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["hwnas", *failing_eval])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2 and "\r" not in err
    assert err.splitlines()[-1].startswith("error: cannot read image ") and "b.png" in err.splitlines()[-1]


def test_on_a_terminal_the_bar_is_erased_and_the_error_is_the_last_line(failing_eval, tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0x0: no room for a bar
    child = subprocess.Popen([sys.executable, "-m", "hwnas", *failing_eval], stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    child.wait(timeout=120)
    os.close(leader)
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    assert child.returncode == 2
    assert "eval" in text and "image" in text  # the bar was drawn on the terminal
    last = text.rstrip("\n").split("\n")[-1].split("\r")[-1]  # what the terminal shows on the last line
    assert last.startswith("error: cannot read image ") and "b.png" in last, repr(text[-300:])
    assert "eval" not in last
