"""The Qualcomm AI Hub client session: configuration, the one place calls are retried, errors in one line.

Retries have one owner, `HubSession.call`. The `qai_hub` client retries by itself twice
over (a urllib3 `Retry` on its HTTP session and a `backoff` loop around requests: about
45 s per call with the network down, logged line by line); those are switched off for
the duration of each call (`client_retries_off`), and `call` retries connection errors
and 5xx with exponential back-off within `retry_budget_s` (one warning line, then one
error line: offline, a command ends within about 70 s), and rate limits on their own,
longer schedule.

Errors are told apart by the client's exception type (`RateLimitedError`,
`InternalError`, `UserError`) and, for a `UserError`, by the HTTP status of the REST
layer's `APIException` it was raised from (the client keeps it as the exception's
context): 401 a bad token, 404 a job that no longer exists, 426 a client too old for
the service, the client's own configuration status a missing token. The client's boxed
multi-line messages are flattened to one line (`one_line`). The API token is never
printed or logged (the client's `ClientConfig` repr contains it, so no config object is
ever logged either).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from hwnas.contracts.errors import HwnasError, ServiceError

log = logging.getLogger(__name__)

# The service's address for people (account page, token); the client's own default
# (`qai_hub.public_rest_api.DEFAULT_HUB_WEB_URL`, checked by a test) -- kept here so that
# importing the backend does not import the client.
WEB_URL = "https://workbench.aihub.qualcomm.com"
NOT_CONFIGURED = (
    "AI Hub is not configured: run `qai-hub configure --api_token YOUR_TOKEN` "
    f"(your token is on {WEB_URL}/account/)."
)
AUTH_FAILED = (
    f"AI Hub rejected the API token (authentication failed): get a current token at {WEB_URL}/account/ "
    "and run `qai-hub configure --api_token YOUR_TOKEN`."
)
UPGRADE = "pip install -U qai-hub"

BACKOFF_S = 10.0  # first wait after a rate limit; doubles each try
MAX_BACKOFF_S = 120.0
RECONNECT_S = 2.0  # first wait after a connection error or 5xx; doubles each try, within retry_budget_s
MAX_RECONNECT_S = 30.0

# HTTP statuses (and the client's own configuration status) that get a message of their own.
HTTP_UNAUTHORIZED, HTTP_NOT_FOUND, HTTP_UPGRADE_REQUIRED = 401, 404, 426
CONFIGURATION_MISSING = 1000  # qai_hub.api_status_codes.API_CONFIGURATION_MISSING_FIELDS

# Box-drawing characters of the client's framed messages (`qai_hub.client._visible_textbox`) and
# their common relatives; the frame's sides are ASCII bars.
BOX_CHARS = "─━│┃┌┐└┘╭╮╰╯├┤┬┴┼═║╔╗╚╝╠╣╦╩╬┏┓┗┛|"


class NotFound(HwnasError):
    """AI Hub answered 404: the job or model asked for does not exist (any more)."""


def load_config():
    """The client configuration (`~/.qai_hub/client.ini` or `$QAIHUB_CLIENT_INI`), or one clear
    `HwnasError` when it is missing or has no token. Never log the returned object."""
    import configparser

    from qai_hub import api_utils
    from qai_hub.public_rest_api import APIException

    path = api_utils.get_config_path()
    try:
        config = api_utils.load_api_config_from_file(path)
    except (FileNotFoundError, APIException):  # no file / [api] lacks api_token, api_url or web_url
        raise HwnasError(NOT_CONFIGURED) from None
    except (configparser.Error, ValueError, OSError, UnicodeDecodeError) as err:
        raise HwnasError(
            f"cannot read the AI Hub configuration {path} ({err.__class__.__name__}); "
            "re-create it with `qai-hub configure --api_token YOUR_TOKEN`."
        ) from None
    if not (config.api_token or "").strip():
        raise HwnasError(NOT_CONFIGURED)
    return config


def check_configured() -> None:
    """Raise `HwnasError` unless AI Hub is configured. Call it before creating any output."""
    load_config()


@contextmanager
def client_retries_off() -> Iterator[None]:
    """The client's own retries off while it runs one call: `HubSession.call` is the one owner of retrying.

    Both of the client's retry layers (the urllib3 `Retry` its sessions mount, the `backoff`
    loop around requests) read `qai_hub.util.session.MAX_RETRIES` when a call starts;
    0 means one try each. Restored afterwards, so other users of the client in this
    process keep its behaviour. A client without that knob is left as it is."""
    try:
        from qai_hub.util import session
    except ImportError:
        session = None
    if session is None or not isinstance(getattr(session, "MAX_RETRIES", None), int):
        yield
        return
    saved = session.MAX_RETRIES
    session.MAX_RETRIES = 0
    try:
        yield
    finally:
        session.MAX_RETRIES = saved


def one_line(text: str) -> str:
    """A boxed, multi-line client message as one line with all its words, frame removed."""
    kept = [line.strip().strip(BOX_CHARS).strip() for line in str(text).splitlines()]
    return " ".join(" ".join(line for line in kept if line).split())


def http_status(err: BaseException) -> int | None:
    """The status of the REST layer's `APIException` behind a client error, if any.

    The client raises its own `UserError` "from None" while handling the `APIException`,
    which hides it from tracebacks but keeps it as `__context__`."""
    from qai_hub.public_rest_api import APIException

    seen: BaseException | None = err
    for _ in range(8):  # a short chain; never loop on a cycle
        if seen is None:
            return None
        if isinstance(seen, APIException):
            return seen.status_code
        seen = seen.__cause__ or seen.__context__
    return None


def client_version() -> str:
    from importlib.metadata import version

    return version("qai-hub")


class HubSession:
    """One `qai_hub.Client` and every call made through it (see the module docstring).

    `options` has `retries`, `retry_budget_s`, `timeout_s` and `poll_s`; `client` is for
    tests and embedding (by default a private client reads the same configuration as the
    global one, so turning its progress printing off does not change the user's);
    `sleep` and `clock` pace back-off and polling."""

    def __init__(self, options: Any, client: Any = None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None):
        self.options = options
        self._client = client
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        self.clock = clock or time.monotonic

    @property
    def injected(self) -> bool:
        return self._client is not None

    def client(self):
        if self._client is None:
            from qai_hub.client import Client

            self._client = Client(config=load_config())
        self._client.set_verbose(False)  # a verbose client prints progress bars to stdout
        return self._client

    def call(self, what: str, fn: Callable, *args, retry_connection: bool = True, **kwargs):
        """`fn(*args, **kwargs)` -- the one place AI Hub calls are retried (module docstring).

        Connection errors and 5xx (`InternalError`) are retried with back-off from
        `RECONNECT_S` while the next try still starts within `retry_budget_s` of the first
        (not at all without `retry_connection`: a job may have been created, and rerunning
        re-attaches instead); rate limits on `BACKOFF_S` doubling, `retries` times. The
        first retry is one warning line, later ones are debug notes."""
        from qai_hub.client import InternalError, RateLimitedError, UserError

        started, attempt = self.clock(), 0
        while True:
            attempt += 1
            try:
                with client_retries_off():
                    return fn(*args, **kwargs)
            except RateLimitedError:
                reason = "rate-limited"
                delay = min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S) if attempt <= self.options.retries else None
            except InternalError:
                reason = "unreachable"
                delay = min(RECONNECT_S * 2 ** (attempt - 1), MAX_RECONNECT_S)
                if not retry_connection or self.clock() - started + delay > self.options.retry_budget_s:
                    delay = None
            except UserError as err:
                raise self._user_error(err, what) from None
            if delay is None:
                break
            if attempt == 1:
                limit = (f"up to {self.options.retries} times" if reason == "rate-limited"
                         else f"for up to {self.options.retry_budget_s:g} s")
                log.warning("AI Hub %s while %s; retrying %s (--verbose shows each try)", reason, what, limit)
            else:
                log.debug("AI Hub %s while %s; try %d in %.0f s", reason, what, attempt + 1, delay)
            self.sleep(delay)
        tries = f"{attempt} {'try' if attempt == 1 else 'tries'} in {self.clock() - started:.0f} s"
        if reason == "rate-limited":
            raise ServiceError(
                f"AI Hub kept rate-limiting requests while {what} ({tries}); wait a few minutes and run the "
                "same command again (submitted jobs are re-attached, not paid for twice)."
            )
        raise ServiceError(
            f"cannot reach Qualcomm AI Hub at {self.api_url()} while {what} ({tries}); check the network and the "
            "service status, then run the same command again (submitted jobs are re-attached, not paid for twice)."
        )

    def _user_error(self, err: Exception, what: str) -> HwnasError:
        """One line of our own for the client's (multi-line, boxed) `UserError`, chosen by HTTP status."""
        status = http_status(err)
        if status == HTTP_UNAUTHORIZED:
            return HwnasError(AUTH_FAILED)
        if status == CONFIGURATION_MISSING:
            return HwnasError(NOT_CONFIGURED)
        if status == HTTP_UPGRADE_REQUIRED:
            return HwnasError(f"AI Hub no longer accepts this qai-hub client ({client_version()}): upgrade qai-hub "
                              f"(`{UPGRADE}`) and run the same command again.")
        text = self.redact(one_line(str(err))).rstrip(".")
        if status == HTTP_NOT_FOUND:
            return NotFound(f"AI Hub found nothing while {what}: {text}.")
        return HwnasError(f"AI Hub refused {what}: {text}.")

    def api_url(self) -> str:
        try:
            return str(self._client.config.api_url)
        except Exception:  # no client or configuration yet
            return "its address"

    def redact(self, text: str) -> str:
        """`text` without the API token (server messages should not carry it; make sure)."""
        try:
            token = self._client.config.api_token if self._client is not None else None
        except Exception:  # no configuration: nothing to hide
            token = None
        return text.replace(token, "***") if token else text

    def wait(self, jobs: list) -> None:
        """Poll all jobs until each has finished; after `timeout_s` raise naming the ones left."""
        deadline = self.clock() + self.options.timeout_s
        pending = {job.job_id: job for job in jobs}
        shown = -1
        while pending:
            for job_id, job in list(pending.items()):
                if self.call(f"checking job {job_id}", job.get_status).finished:
                    del pending[job_id]
            if not pending:
                break
            if len(pending) != shown:
                log.info("waiting for %d AI Hub job(s) to finish", len(pending))
                shown = len(pending)
            if self.clock() >= deadline:
                ids = sorted(pending)
                listed = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
                raise HwnasError(
                    f"AI Hub jobs {listed} were still running after {self.options.timeout_s:g} s; run the same "
                    "command again later to re-attach to them (their ids are kept in the table's sidecar)."
                )
            self.sleep(self.options.poll_s)

    def failure(self, job) -> str | None:
        """AI Hub's message (one line, token hidden) if the finished `job` failed, else None."""
        status = self.call(f"checking job {job.job_id}", job.get_status)
        if not status.failure:
            return None
        return self.redact(" ".join((status.message or status.code).split())).rstrip(".")

    def tool_versions(self, job) -> dict[str, str]:
        """Tool name -> version (e.g. QAIRT) that a finished job reports in its results.

        The 0.56 client's profile dict drops them, so the job's results are read as the
        service sends them (`public_rest_api.get_job_results`, as qai_hub_models reads
        them), through the client's own wrapper (configuration, error translation): a
        profile's `inference_job_result.detail`, a compile job's `compile_detail`."""
        from qai_hub import public_rest_api

        client = self.client()
        result = self.call(f"reading the results of job {job.job_id}", client._api_call,
                           public_rest_api.get_job_results, job.job_id)
        if result.HasField("compile_job_result"):
            found = result.compile_job_result.compile_detail.tool_versions
        else:
            found = result.inference_job_result.detail.tool_versions
        return {str(t.name): str(t.version) for t in found}
