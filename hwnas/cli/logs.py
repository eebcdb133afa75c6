"""Where log lines go: stderr, one line each, third-party chatter kept out unless --verbose.

hwnas logs its own progress notes at INFO. Libraries underneath log too: the AI Hub
client logs every transport retry at INFO ("Retry attempt number ..."), `backoff`
logs each give-up at ERROR although hwnas reports that failure itself in one line,
urllib3 logs connection retries at WARNING. Those are kept to what a user must see
unless `--verbose` asks for everything.
"""

from __future__ import annotations

import logging
import sys

# logger name -> lowest level shown without --verbose
THIRD_PARTY = {
    "urllib3": logging.ERROR,
    "LogRetry": logging.WARNING,  # qai_hub's urllib3 Retry subclass
    "qai_hub": logging.WARNING,
    "backoff": logging.CRITICAL,  # its give-up message duplicates hwnas's own error line
    "requests": logging.WARNING,
    "matplotlib": logging.WARNING,
    "PIL": logging.WARNING,
}


def configure(verbose: bool = False) -> None:
    """Root logging to stderr (`message` only); DEBUG and all third-party lines with `verbose`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    for name, level in THIRD_PARTY.items():
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else level)
