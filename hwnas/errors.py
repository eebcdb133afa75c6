"""User-facing errors.

Anything a user can cause (bad file, unknown name, missing table entry) raises
`HwnasError` with one sentence that names the problem and the fix. The CLI prints
that sentence and exits non-zero; it never shows a traceback for these.
"""


class HwnasError(Exception):
    """A mistake the user can fix; `str(err)` is the one line shown to them."""
