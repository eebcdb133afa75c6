"""Usage errors for every registered command, generated from the typer app itself.

The contract (`hwnas.cli.exits`): exit 2, nothing on stdout, no traceback, and
`error: <sentence>` as the last stderr line (the usage line may precede it). Cases come
from introspecting each command's parameters, so a new command or option is covered
without editing this file:

- an unknown flag;
- a bad value for one typed option (an int or float option gets `abc`); a command
  without one gets an unexpected extra argument instead;
- a missing required option or argument, where the command has one.
"""

from __future__ import annotations

import sys

import pytest
import typer.main

from hwnas import __version__
from hwnas.cli import app, main

ROOT = typer.main.get_command(app)


def leaves(group, path=()):
    """(command path, command) for every runnable command, sub-groups (`hwnas lut`) included."""
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name), command


def value_type(param):
    """The Python type an option converts to (typer 0.2x keeps it on a type descriptor, older typer on click's type)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return descriptor.annotation
    return {"integer": int, "float": float}.get(getattr(getattr(param, "type", None), "name", None))


def numeric_option(command):
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag and value_type(param) in (int, float):
            return param.opts[0]
    return None


def required(command):
    return [p for p in command.params if p.required]


def cases():
    out = []
    for path, command in leaves(ROOT):
        name = " ".join(path)
        out.append(pytest.param([*path, "--no-such-flag"], "--no-such-flag", id=f"{name}: unknown flag"))
        flag = numeric_option(command)
        if flag:
            out.append(pytest.param([*path, flag, "abc"], flag, id=f"{name}: {flag} abc"))
        else:  # one more positional argument than the command takes
            given = [f"arg{i}" for i, p in enumerate(command.params) if p.param_type_name == "argument"]
            out.append(pytest.param([*path, *given, "unexpected-extra"], "unexpected-extra", id=f"{name}: extra argument"))
        if required(command):
            first = required(command)[0]
            hint = first.opts[0] if first.param_type_name == "option" else first.name
            out.append(pytest.param(list(path), hint, id=f"{name}: missing {hint}"))
    return out


CASES = cases()


def hwnas(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["hwnas", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_every_command_is_covered():
    commands = {" ".join(path) for path, _ in leaves(ROOT)}
    assert {"search", "sweep", "train", "eval", "export", "denoise", "build-lut", "profile", "lut show", "describe"} <= commands
    assert len(CASES) >= 2 * len(commands)


@pytest.mark.parametrize("args, named", CASES)
def test_a_usage_error_is_one_last_line_and_exit_2(monkeypatch, capsys, args, named):
    code, out, err = hwnas(monkeypatch, capsys, args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", err
    assert "Traceback" not in err and len(lines) <= 2, err
    assert lines[-1].startswith("error: ") and named.lower() in lines[-1].lower(), err  # click < 8.2 upper-cases argument names
    assert sum(line.startswith("error:") for line in lines) == 1
    command = [a for a in args if not a.startswith("-") and a not in ("abc", "unexpected-extra") and not a.startswith("arg")]
    assert lines[-1].endswith(f"; see `hwnas {' '.join(command)} --help`.")


@pytest.mark.parametrize("args", [[], ["lut"], ["--help"]])
def test_a_bare_group_prints_its_help_like_help_does(monkeypatch, capsys, args):
    code, out, err = hwnas(monkeypatch, capsys, args)
    assert code == 0 and err == "" and "Usage: hwnas" in out and "Commands" in out


def test_version(monkeypatch, capsys):
    code, out, err = hwnas(monkeypatch, capsys, ["--version"])
    assert (code, out, err) == (0, f"hwnas {__version__}\n", "")


def test_usage_errors_need_no_click_package():
    """typer 0.2x vendors click and does not install it: nothing may import `click`."""
    import subprocess

    if typer.BadParameter.__module__.startswith("click"):
        pytest.skip("this typer uses the click package (typer < 0.2x; the lowest-versions install, .ci/lowest)")

    probe = ("import sys, builtins\nreal = builtins.__import__\n"
             "def guard(name, *a, **k):\n    if name == 'click' or name.startswith('click.'):\n        raise ImportError(name)\n"
             "    return real(name, *a, **k)\nbuiltins.__import__ = guard\nsys.argv = ['hwnas', 'describe', '--image-size', 'abc']\n"
             "from hwnas.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: invalid value for '--image-size'")


NO_RANGE = {("eval", "--seed")}  # any integer seeds the noise
# Shorthands for task options: their range is the task's (its Options model), shown by `hwnas tasks`.
NO_RANGE |= {(command, "--crop") for command in ("search", "sweep", "train")}


def test_every_numeric_option_shows_its_range_in_help():
    """Ranges are validated in the configs; --help quotes them (e.g. "(>= 8)")."""
    import re

    missing = []
    for path, command in leaves(ROOT):
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag and value_type(param) in (int, float):
                key = (" ".join(path), param.opts[0])
                if key not in NO_RANGE and not re.search(r"(>=?|<=?) ?-?\d|\(-?[\d.]+ to -?[\d.]+\)", param.help or ""):
                    missing.append(key)
    assert missing == []


def test_commands_validate_flags_through_build_config():
    """A config built directly raises pydantic's multi-line ValidationError (a traceback);
    `build_config` turns it into one line naming the flag."""
    import re
    from pathlib import Path

    import hwnas.cli

    direct = []
    for module in Path(hwnas.cli.__file__).parent.glob("*.py"):
        for number, line in enumerate(module.read_text().splitlines(), 1):
            if re.search(r"(?<![\w.])[A-Z]\w*Config\(", line) and "build_config" not in line and "class " not in line:
                direct.append(f"{module.name}:{number}")
    assert direct == []


@pytest.mark.parametrize("args, typo, meant, command", [(["serch"], "serch", "search", "hwnas"),
                                                        (["lut", "shw"], "shw", "show", "hwnas lut")])
def test_a_typo_s_suggestion_reads_as_one_sentence(monkeypatch, capsys, args, typo, meant, command):
    code, _, err = hwnas(monkeypatch, capsys, args)
    suggested = f"error: no such command '{typo}' (did you mean '{meant}'?); see `{command} --help`."
    plain = f"error: no such command '{typo}'; see `{command} --help`."  # a typer that suggests nothing
    assert code == 2 and err.strip().splitlines()[-1] in (suggested, plain), err


def test_an_out_of_range_value_is_one_line_naming_the_flag(monkeypatch, capsys):
    code, out, err = hwnas(monkeypatch, capsys, ["describe", "--image-size", "7"])
    assert (code, out) == (2, "") and err.splitlines() == ["error: invalid --image-size: Input should be greater than or equal to 8."]
