"""Shell completion: `hwnas --show-completion SHELL` prints a script; the shell's request completes commands and flags."""

from __future__ import annotations

import os
import subprocess
import sys


def complete(words: str, cword: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "_HWNAS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return subprocess.run([sys.executable, "-m", "hwnas"], capture_output=True, text=True, env=env, timeout=120)


def test_completion_scripts_and_answers():
    # from bash, as a user runs it: typer names the shell by walking up the process tree (shellingham), and a
    # test runner started without a shell above it (nohup, a service) would have none; `; exit $?` keeps bash
    # running above it (a lone command would be exec'd in its place)
    script = subprocess.run(["bash", "-c", f"'{sys.executable}' -m hwnas --show-completion; exit $?"], capture_output=True,
                            text=True, timeout=120)
    assert script.returncode == 0 and "_HWNAS_COMPLETE=complete_bash" in script.stdout, script.stderr
    assert complete("hwnas bui", 1).stdout.split() == ["build-lut"]
    assert complete("hwnas build-lut --con", 2).stdout.split() == ["--config"]
    assert "--install-completion" in subprocess.run([sys.executable, "-m", "hwnas", "--help"], capture_output=True, text=True, timeout=120).stdout
