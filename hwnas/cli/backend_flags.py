"""A backend's command-line flags, generated from its `Options` model: no backend is named here.

`build-lut` and `profile` declare only the shared vocabulary (--backend, --device,
--precision, -b KEY=VALUE) and let every other flag through (`EXTRA_ARGS`). Once the
backend is known -- from --backend, --config, the table's sidecar or the default --
`parse` reads each remaining `--field-name VALUE` (or `--field-name=VALUE`; a bool field
is a switch, `--field-name` / `--no-field-name`) as that field of the backend's Options:
underscores are dashes, a text field keeps its value as written, any other value is YAML
(like -b). A flag the backend has no field for is refused in one sentence naming the
backend's flags (a usage error unless another installed backend has it). So a new backend gets first-class flags with no edit here; `hwnas backends NAME`
and `--help` list them.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
SHARED = ("device", "precision")  # declared by the commands themselves (the shared vocabulary)


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def options_model(backend: str):
    from hwnas.contracts.plugins import get_backend

    return get_backend(backend).Options


def _kinds(annotation: Any) -> set[Any]:
    """The plain types an annotation admits (Optional and Union unpacked; a Literal's values' types)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return set().union(*(_kinds(a) for a in typing.get_args(annotation))) - {type(None)}
    return {origin or annotation}


def is_switch(info) -> bool:
    return _kinds(info.annotation) == {bool}


def _value(info, text: str) -> Any:
    """A text field takes the word as written (`--qairt-version 2.31` stays "2.31"); others read it as YAML."""
    if str in _kinds(info.annotation):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # the Options model says what is wrong with it


def listing(backend: str) -> list[tuple[str, str]]:
    """(flag with its value, what it is and its default) for every field of the backend's Options."""
    out = []
    for name, info in options_model(backend).model_fields.items():
        choices = typing.get_args(info.annotation) if typing.get_origin(info.annotation) is typing.Literal else ()
        numeric = _kinds(info.annotation) <= {int, float}
        value = "" if is_switch(info) else " " + ("|".join(map(str, choices)) if choices else "N" if numeric else "TEXT")
        words = [info.description] if info.description else []
        if not info.is_required():
            words.append(f"default {info.default!r}")
        out.append((flag(name) + value, "; ".join(words)))
    return out


def flags_sentence(backend: str) -> str:
    return ", ".join(flag(n) for n in options_model(backend).model_fields) or "none"


def parse(args: list[str], backend: str, ctx=None) -> dict[str, Any]:
    """The extra command-line words `args` as options of `backend` (a usage error for anything else)."""
    from hwnas.cli.exits import USAGE_ERROR
    from hwnas.contracts.errors import HwnasError

    fields = options_model(backend).model_fields
    by_flag = {flag(n): n for n in fields}
    out: dict[str, Any] = {}
    words = list(args)
    while words:
        word = words.pop(0)
        if not word.startswith("--"):
            raise USAGE_ERROR(f"Got unexpected extra argument ({word})" if not word.startswith("-") else
                              f"No such option: {word}", ctx=ctx)
        name, eq, text = word.partition("=")
        negated = name.startswith("--no-") and name[:2] + name[5:] in by_flag and is_switch(fields[by_flag[name[:2] + name[5:]]])
        key = by_flag.get(name[:2] + name[5:] if negated else name)
        if key is None:
            refused = f"{name} does not apply to backend {backend}; its flags are {flags_sentence(backend)} (and -b KEY=VALUE)"
            if _elsewhere(name, backend):  # another backend's flag: a mistake about the backend, not the command
                raise HwnasError(refused + ".")
            raise USAGE_ERROR(refused, ctx=ctx)
        info = fields[key]
        if is_switch(info) and not eq:
            out[key] = not negated
            continue
        if not eq:
            if not words:
                raise USAGE_ERROR(f"Option '{name}' requires an argument", ctx=ctx)
            text = words.pop(0)
        out[key] = _value(info, text)
    return out


def _elsewhere(name: str, backend: str) -> bool:
    """Whether `name` is a flag of another installed backend."""
    from hwnas.contracts.plugins import backend_names

    for other in backend_names():
        try:
            if other != backend and name in map(flag, options_model(other).model_fields):
                return True
        except Exception:  # a broken plugin: not this flag's owner
            continue
    return False


def help_epilog(backends: list[str] | None = None) -> str:
    """The backend flags of every installed backend, for a command's --help (read only when help is asked for)."""
    from hwnas.contracts.plugins import backend_names

    lines = ["Backend flags (each backend's Options; `hwnas backends NAME` says more):"]
    for name in backends or backend_names():
        try:
            flags = [f for f, _ in listing(name) if f.split()[0] not in map(flag, SHARED)]
        except Exception:  # a broken plugin must not break --help
            continue
        lines.append(f"  {name}: {', '.join(flags) or '-'}")
    return "\n\n".join(lines)


def command_class():
    """typer's command class with the backend flags as its --help epilog, computed only when help is shown."""
    from typer.core import TyperCommand

    class WithBackendFlags(TyperCommand):
        @property
        def epilog(self) -> str:
            return help_epilog()

        @epilog.setter
        def epilog(self, value) -> None:  # click sets it in __init__; ours is computed
            pass

    return WithBackendFlags
