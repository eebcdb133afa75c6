"""User-facing errors.

Anything a user can cause (bad file, unknown name, missing table entry) raises
`HwnasError` with one sentence that names the problem and the fix. The CLI prints
that sentence and exits non-zero; it never shows a traceback for these.

Two kinds end differently, so a script can tell them apart (exit statuses:
`hwnas.cli.exits`): the operating system refused (a full disk, a read-only folder)
-- `RuntimeFailure`; a service did not answer (AI Hub unreachable or rate-limiting)
-- `ServiceError`, where running the same command later may succeed.
"""


from typing import Any, NamedTuple


class HwnasError(Exception):
    """A mistake the user can fix; `str(err)` is the one line shown to them.

    A sentence that names a setting says it as its reader gave it: `image_size=256` to a
    Python caller (`str(err)`), `--image-size 256` on the command line (`err.cli`, which
    `hwnas.cli` prints). `naming` makes such an error; any other has one wording for both.
    """

    def __init__(self, *args: Any, cli: str | None = None):
        super().__init__(*args)
        self._cli = cli

    @property
    def cli(self) -> str:
        """The sentence as the command line says it (flags for parameters)."""
        return self._cli if self._cli is not None else str(self)


class Setting(NamedTuple):
    """A setting named in an error sentence: as a Python keyword and as a command-line flag."""

    python: str
    cli: str


NAME_ONLY = object()  # `setting(name)`: the setting's name, no value


def setting(name: str, value: Any = NAME_ONLY, *, flag: str | None = None, python: str | None = None) -> Setting:
    """`setting("image_size", 256)` -> ("image_size=256", "--image-size 256"); without a value, the names alone.
    `flag`: a flag not spelt like the parameter (`--lut` for `lut`, `-o` for `spec`'s options); `python`: the
    Python wording when it is not `name=value`."""
    flag = flag or "--" + name.replace("_", "-")
    if value is NAME_ONLY:
        return Setting(python or name, flag)
    return Setting(python or f"{name}={value!r}", flag if value is True else f"{flag} {value}")  # a switch: the flag alone


def wording(template: str, **settings: Any) -> Setting:
    """`template` in both wordings: each `{name}` becomes that setting's Python wording, and its flag. A
    keyword's value is a `Setting`, or a value shown with the parameter of that name. Other braces are left
    as they are (the template may quote values)."""
    python, cli = template, template
    for name, given in settings.items():
        words = given if isinstance(given, Setting) else setting(name, given)
        python, cli = python.replace("{" + name + "}", words.python), cli.replace("{" + name + "}", words.cli)
    return Setting(python, cli)


def naming(template: str, error: type[HwnasError] = HwnasError, **settings: Any) -> HwnasError:
    """An error whose sentence names settings (`wording`): the parameter in `str(err)`, the flag in `err.cli`;
    e.g. `naming("pass {image_size} or rebuild it", image_size=256)`."""
    python, cli = wording(template, **settings)
    return error(python, cli=cli)


class RuntimeFailure(HwnasError):
    """The operating system refused while running (full disk, file-size limit, read-only or unwritable folder)."""


class ServiceError(HwnasError):
    """A remote service failed (unreachable, 5xx, rate limits that did not clear): try again later."""


class ImagesTooSmall(HwnasError):
    """A task's images are all smaller than the crop it was given. `fact` is the sentence without its fix, so a
    caller whose crop is not the user's own (export's calibration crop) can give the fix that applies there."""

    def __init__(self, fact: str, fix: str):
        super().__init__(f"{fact}; {fix}.")
        self.fact = fact
