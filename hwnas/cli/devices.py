"""The table flags of a search for one or several devices: --lut, --lut-weight, --target-ms.

    --lut a.csv                          one table (as always)
    --lut phone=a.csv --lut cpu=b.csv    several, named (unnamed: the file's stem names it)
    --lut-weight phone=2                 a device's weight in the combination (default 1)
    --target-ms 12 | --target-ms phone=12 --target-ms cpu=300   constraint form, per device

One plain table gives the config fields `lut` (and `target_ms`) as before; anything
else gives `tables` (`hwnas.contracts.config.TableRef`), validated once by `SearchConfig`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import typer

from hwnas.contracts.errors import HwnasError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

LutsOpt = typer.Option(None, "--lut", help="A latency table built earlier (e.g. on AI Hub); space, preset, image size, backend and device come from its sidecar. Repeat it to search for several devices at once, each optionally named: --lut phone=a.csv --lut cpu=b.csv (the tables must describe the same network; unnamed, the file's stem names it).")
LutWeightOpt = typer.Option(None, "--lut-weight", help="Several devices: NAME=WEIGHT, a device's weight in the combination (default 1 each). > 0.")
TargetsOpt = typer.Option(None, "--target-ms", help="Constraint form: the expected latency is held to this many ms (see --target-form). With several tables one per device, NAME=MS; only the devices over their target are penalised. > 0.")
HoldTargetOpt = typer.Option(None, "--hold-target/--no-hold-target", help="With --target-ms: bring the derived network under every target by swapping the candidates whose alpha costs least per ms saved (default), or keep the argmax network, which can land above the target.")
TargetFormOpt = typer.Option(None, "--target-form", help="How a target penalises: absolute (|E/T - 1|, TuNAS: the search spends its budget instead of drifting below it; the default with one table) or hinge (only latency above the target; the default with several tables).")
CombineOpt = typer.Option(None, "--combine", help="Several devices: how their latency terms become one: sum (weighted mean of each device's latency relative to its base network; default) or worst (a smooth maximum of the weighted terms).")


def table_fields(luts: Optional[list[str]], weights: Optional[list[str]], targets: Optional[list[str]]) -> dict[str, Any]:
    """The config fields the three flags give ({} when none was given)."""
    refs = [_lut(text) for text in luts or ()]
    named_weights = dict(_pair(text, "--lut-weight", "phone=2") for text in weights or ())
    bare, named_targets = _targets(targets or ())
    plain = len(refs) == 1 and refs[0][0] is None and not named_weights and not named_targets
    if not refs or plain:
        if named_weights or named_targets:
            flag = "--lut-weight" if named_weights else "--target-ms"
            raise HwnasError(f"{flag} NAME=... names a table: pass the tables with --lut NAME=PATH too.")
        out = {"lut": refs[0][1]} if refs else {}
        return {**out, "target_ms": bare} if bare is not None else out
    tables = [{"name": name or Path(path).stem, "path": path} for name, path in refs]
    names = [t["name"] for t in tables]
    for flag, given in (("--lut-weight", named_weights), ("--target-ms", named_targets)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise HwnasError(f"{flag} names the table {unknown[0]!r}, but the tables are {', '.join(names)}; "
                             "use one of those names (--lut NAME=PATH sets a name).")
    for t in tables:
        t.update({k: v for k, v in (("weight", named_weights.get(t["name"])),
                                    ("target_ms", named_targets.get(t["name"]))) if v is not None})
    return {"tables": tables, **({"target_ms": bare} if bare is not None else {})}


def _lut(text: str) -> tuple[str | None, str]:
    """(name or None, path) of `--lut [NAME=]PATH`; a path that exists as given is never split."""
    name, sep, path = text.partition("=")
    if not sep or not path or Path(text).exists():
        return None, text
    if NAME.match(name):
        return name, path
    if Path(path).exists():  # NAME=PATH meant, with a name a table cannot take: reading it all as a path would say "no table"
        fixed = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-") or "table"
        raise HwnasError(f"--lut {text!r}: {name!r} is not a table name (letters, digits, '.', '_' and '-', starting with a "
                         f"letter or digit) and no file {text!r} exists; write e.g. --lut {fixed}={path}.")
    return None, text


def _pair(text: str, flag: str, example: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        number = float(value) if sep else None
    except ValueError:
        number = None
    if not sep or not NAME.match(name) or number is None:
        raise HwnasError(f"{flag} {text!r} is not NAME=NUMBER; write e.g. {flag} {example}.")
    return name, number


def _targets(texts) -> tuple[float | None, dict[str, float]]:
    """(bare target or None, {name: target})."""
    bare, named = None, {}
    for text in texts:
        if "=" in text:
            name, value = _pair(text, "--target-ms", "phone=12")
            named[name] = value
            continue
        try:
            bare = float(text)
        except ValueError:
            raise HwnasError(f"--target-ms {text!r} is not a number of milliseconds or NAME=MS; write e.g. "
                             "--target-ms 12 or --target-ms phone=12.") from None
    if bare is not None and named:
        raise HwnasError("--target-ms takes either one number (one table) or NAME=MS per table, not both.")
    return bare, named
