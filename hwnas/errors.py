"""User-facing errors.

Anything a user can cause (bad file, unknown name, missing table entry) raises
`HwnasError` with one sentence that names the problem and the fix. The CLI prints
that sentence and exits non-zero; it never shows a traceback for these.

Two kinds end differently, so a script can tell them apart (exit statuses:
`hwnas.cli.exits`): the operating system refused (a full disk, a read-only folder)
-- `RuntimeFailure`; a service did not answer (AI Hub unreachable or rate-limiting)
-- `ServiceError`, where running the same command later may succeed.
"""


class HwnasError(Exception):
    """A mistake the user can fix; `str(err)` is the one line shown to them."""


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
