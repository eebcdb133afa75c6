"""Qualcomm AI Hub latency backend: compile and profile on real Snapdragon devices.

Uses the `qai_hub` client as documented for its 0.56 release: each measured model is
exported with `hwnas.onnx_export.to_onnx` (the same graph `hwnas export` ships), uploaded,
compiled (`--target_runtime`, default `qnn_context_binary`) and profiled with
`submit_inference_job(..., profile=True)` (0.56 deprecates `submit_profile_job`). Every
job is submitted before any is waited for; the server queues a profile job on its
compile job's target model at once, so the whole batch runs in parallel.

Two modes:

- `per-unit`: one compile + one profile job per unit (a candidate at an input shape, or
  a fixed part). The row's median, p10 and p90 all come from the same warm profiler
  iterations (`all_inference_times` without the first, cold one); the service's own
  `estimated_inference_time` stands beside them as `service_ms` and is the statistic
  only when a profile has no per-iteration times. The job book records which (see
  `qai_hub_profile.timing`), and the tool versions when the profile carries them.
- `whole-network`: one uniform network per candidate (every position that offers the
  candidate takes it), profiled whole; per-layer `execution_detail` times are
  attributed to positions and fixed parts by the module path in the layer names, and
  each (candidate, input shape) row is the median over the positions that share it.
  Far fewer jobs (2 per candidate), and blocks are timed in context -- but the unit of
  `execution_time` is not documented: it is taken as microseconds, and the ratio of
  summed layer times to the documented total is logged so the assumption can be
  checked. Ops outside every unit (input padding, skip additions) are not counted.

Precision (`precision`, default fp32) follows the client's documented quantisation route:
the compile job gets `--quantize_full_type float16|int8|w8a16` and `--quantize_io` (the
units of a deployed network hand each other quantised tensors, so a unit is timed without
a float conversion at its own input and output), and for the integer precisions
`calibration_data`: a few seeded random inputs of the unit's input shape. Random data
sets the quantisation scales, not which kernels run or how fast, so it times a unit as
real images would (the ONNX Runtime backend calibrates its timing units the same way);
it is not for accuracy -- `qai_hub_accuracy` checks that on real images. The precision is
a table setting, and each job's compile options are kept in the job book.

Submitted job ids are kept in the table's job book (`attach`), saved before any
waiting, so an interrupted build re-attaches to its jobs (`qai_hub.get_job`) instead of
paying for them again. Failures never become numbers: a failed job raises
`MeasurementError` naming the unit, the job id and AI Hub's message.

Retries have one owner, `QaiHubBackend._call`. The client retries by itself twice over
(a urllib3 `Retry` on its HTTP session and a `backoff` loop around requests: about 45 s
per call with the network down, logged line by line); those are switched off for the
duration of each call (`client_retries_off`), and `_call` retries connection errors
and 5xx with exponential back-off within `retry_budget_s` (one warning line, then one
error line: offline, a command ends within about 70 s), and rate limits on their own,
longer schedule. Authentication, configuration, a client too old for the service and
unknown devices end in one line; the client's boxed multi-line messages are flattened
to one (`one_line`). The API token is never printed or logged (the client's
`ClientConfig` repr contains it, so no config object is ever logged either).
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.errors import HwnasError, ServiceError
from hwnas.latency import LatencyBackend, Measurement, MeasurementError, shape_str, versions
from hwnas.quantize import QUANTISED
from hwnas.space import Architecture, Position, SearchSpace, Shape, Unit
from hwnas.tables.attribution import attribute

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "AI Hub is not configured: run `qai-hub configure --api_token YOUR_TOKEN` "
    "(see https://app.aihub.qualcomm.com/account)."
)
AUTH_FAILED = (
    "AI Hub rejected the API token (authentication failed): get a current token at "
    "https://app.aihub.qualcomm.com/account and run `qai-hub configure --api_token YOUR_TOKEN`."
)

# Short names for the chips this project targets -> the AI Hub device that stands for them.
# SM8650 is the Snapdragon 8 Gen 3; its devices carry `chipset:qualcomm-snapdragon-8gen3`.
DEVICE_ALIASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sm8650": ("Samsung Galaxy S24 (Family)", ("chipset:qualcomm-snapdragon-8gen3",)),
}

UPGRADE = "pip install -U qai-hub"

# hwnas precision -> the value of the compile option `--quantize_full_type` (fp32: no option).
QUANTIZE_FULL_TYPE = {"fp16": "float16", "int8": "int8", "w8a16": "w8a16"}
CALIBRATION_INPUTS = 4  # seeded random inputs that set a timing unit's quantisation scales (module docstring)

BACKOFF_S = 10.0  # first wait after a rate limit; doubles each try
MAX_BACKOFF_S = 120.0
RECONNECT_S = 2.0  # first wait after a connection error or 5xx; doubles each try, within retry_budget_s
MAX_RECONNECT_S = 30.0

# Box-drawing characters of the client's framed messages (`qai_hub.client._visible_textbox`) and
# their common relatives; the frame's sides are ASCII bars.
BOX_CHARS = "─━│┃┌┐└┘╭╮╰╯├┤┬┴┼═║╔╗╚╝╠╣╦╩╬┏┓┗┛|"


class QaiHubOptions(BaseModel):
    """What to measure on and how; everything but the waiting knobs changes the numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field("sm8650", description="`sm8650`, an AI Hub device name, or `chipset:...` attribute(s), comma-separated")
    target_runtime: Literal["qnn_context_binary", "qnn_dlc", "tflite", "onnx", "precompiled_qnn_onnx"] = "qnn_context_binary"
    compute_unit: Literal["npu", "gpu", "cpu", "all"] = "npu"
    mode: Literal["per-unit", "whole-network"] = "per-unit"
    max_profiler_iterations: int = Field(20, ge=1)
    cold_iterations: int = Field(1, ge=0, description="first profiler iterations left out of p10/median/p90 (cold start)")
    timeout_s: float = Field(7200.0, gt=0, description="how long to wait for submitted jobs; they stay re-attachable after it")
    poll_s: float = Field(10.0, gt=0, description="seconds between job status checks")
    retries: int = Field(5, ge=0, description="retries after rate limiting (10 s, doubling, at most 120 s apart)")
    retry_budget_s: float = Field(60.0, ge=0, description="how long to keep retrying connection errors and 5xx per call")
    precision: str = Field("fp32", description="fp32, fp16, int8 or w8a16: compiled with --quantize_full_type (module docstring)")

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, v: str | None) -> str:
        from hwnas.quantize import PRECISIONS, check_precision

        return "fp32" if v is None else check_precision(v, PRECISIONS, "qai-hub")  # None: flag not given

    @field_validator("device", mode="before")
    @classmethod
    def _named(cls, v: str | None) -> str:
        if v is None:  # flag not given
            return "sm8650"
        if not isinstance(v, str) or not v.strip():
            raise ValueError("an AI Hub device name, chipset attribute or alias such as sm8650 is required")
        return v.strip()


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
    """The client's own retries off while it runs one call: `_call` is the one owner of retrying.

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


def unit_key(unit: Unit) -> str:
    return f"{unit.kind}:{unit.name}@{shape_str(unit.input_shape)}"


@dataclass
class _Track:
    """One model to compile and profile, and its jobs once submitted (or re-attached)."""

    key: str | None  # job-book key; None: not kept in the book (never re-attached)
    label: str  # for messages, e.g. "candidate 'naf' at 1x8x32x32"
    build: Callable[[], "nn.Module"]  # called only when the model has to be exported
    input_shape: Shape
    compile: Any = None  # qai_hub.CompileJob
    profile: Any = None  # qai_hub.InferenceJob (profile=True)
    node_names: dict[str, str] | None = None  # if a dict: filled with normalised -> exported ONNX node names
    record: dict[str, Any] = field(default_factory=dict)  # kept in the job book when finished: what the row used


class QaiHubBackend(LatencyBackend):
    """Latency measured by Qualcomm AI Hub profile jobs (see the module docstring).

    `client` (a `qai_hub.Client`) is for tests and embedding; by default a private client
    reads the same configuration as `qai_hub`'s global one (private, so turning its
    progress printing off does not change the user's global client). `sleep` and `clock`
    pace back-off and polling.
    """

    name: ClassVar[str] = "qai-hub"
    Options: ClassVar[type[BaseModel]] = QaiHubOptions
    submits_jobs: ClassVar[bool] = True  # measuring queues jobs on shared devices: commands say how many first

    def __init__(
        self,
        options: QaiHubOptions | None = None,
        *,
        client: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        super().__init__(options or QaiHubOptions())
        self._client = client
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._clock = clock or time.monotonic
        self._jobs: dict[str, Any] = {}
        self._save: Callable[[], None] = lambda: None
        self._last_network: tuple | None = None  # (module, shape, profile, track, node names): one job for check + breakdown

    # -- what the table records ------------------------------------------------------

    @property
    def device(self) -> str:
        """`sm8650` for the alias, else the device name or attribute as given."""
        d = self.options.device
        return d.lower() if d.lower() in DEVICE_ALIASES else d

    def device_spec(self) -> tuple[str, tuple[str, ...]]:
        """(AI Hub device name, attributes) that jobs are submitted for."""
        d = self.options.device
        if d.lower() in DEVICE_ALIASES:
            return DEVICE_ALIASES[d.lower()]
        parts = [p.strip() for p in d.split(",") if p.strip()]
        if all(":" in p for p in parts):
            return "", tuple(parts)
        return d, ()

    @property
    def client_version(self) -> str:
        from importlib.metadata import version

        return version("qai-hub")

    def runtime(self) -> str:
        """e.g. 'qai-hub 0.56.0 qnn_context_binary npu' (+ ' whole-network')."""
        o = self.options
        tail = " whole-network" if o.mode == "whole-network" else ""
        return f"qai-hub {self.client_version} {o.target_runtime} {o.compute_unit}{tail}"

    def compile_options(self, quantize_io: bool = True) -> str:
        """The compile job's options; a precision other than fp32 adds `--quantize_full_type`, and
        `--quantize_io` unless the caller feeds and reads float tensors (the accuracy check)."""
        o = self.options
        options = f"--target_runtime {o.target_runtime} --compute_unit {o.compute_unit}"
        if o.precision in QUANTIZE_FULL_TYPE:
            options += f" --quantize_full_type {QUANTIZE_FULL_TYPE[o.precision]}" + " --quantize_io" * quantize_io
        return options

    def calibration_data(self, input_shape: Sequence[int]) -> dict[str, list[np.ndarray]] | None:
        """`calibration_data` of a timing unit's compile job: for int8 and w8a16, CALIBRATION_INPUTS
        seeded random inputs of its shape under the exported input name `x` (module docstring)."""
        if self.options.precision not in QUANTISED:
            return None
        rng = np.random.default_rng(0)
        return {"x": [rng.standard_normal(tuple(input_shape), dtype=np.float32) for _ in range(CALIBRATION_INPUTS)]}

    def profile_options(self) -> str:
        return f"--compute_unit {self.options.compute_unit} --max_profiler_iterations {self.options.max_profiler_iterations}"

    def settings(self) -> dict[str, Any]:
        """What changes the numbers (a table refuses a backend that differs in any of them)."""
        o = self.options
        return {"device": self.device, "target_runtime": o.target_runtime, "compute_unit": o.compute_unit, "mode": o.mode,
                "cold_iterations": o.cold_iterations, "precision": o.precision}

    def protocol(self) -> dict[str, Any]:
        """How the numbers were taken (recorded in the sidecar, never compared)."""
        o = self.options
        name, attributes = self.device_spec()
        statistic = {
            "per-unit": f"median_ms, p10_ms, p90_ms = percentiles of the same warm iterations of a profile job on the unit "
            f"alone: execution_summary.all_inference_times (us) / 1000 without the first {o.cold_iterations} (cold); "
            "service_ms = estimated_inference_time (us) / 1000, also the statistic when a profile has no iteration "
            "times (the job book's 'used' says which, per unit); peak memory from estimated_inference_peak_memory (bytes)",
            "whole-network": "one uniform network per candidate, profiled whole; a unit's time = sum of the "
            "execution_detail execution_time (assumed us: AI Hub does not document the unit) of the layers whose "
            "names carry its module path, / 1000; median (p10/p90) over positions with the same input shape and, "
            "for fixed parts, over networks; ops outside every unit are not counted; no per-unit peak memory",
        }[o.mode]
        protocol = {
            "hub_device": {"name": name, "attributes": list(attributes)},
            "compile_options": self.compile_options(),
            "profile_options": self.profile_options(),
            "statistic": statistic,
        }
        if o.precision in QUANTISED:
            protocol["calibration"] = (f"{CALIBRATION_INPUTS} random normal inputs of each unit's input shape (seed 0): "
                                       "they set quantisation scales, not kernel speed")
        return protocol

    def tool_versions(self) -> dict[str, str]:
        return versions("hwnas", "qai-hub", "torch", "onnx")

    def planned_jobs(self, units: Sequence[Unit]) -> int:
        """New submissions (compile + profile) measuring `units` would cost; jobs already in
        the attached job book are re-attached, not counted."""
        if self.options.mode == "whole-network":
            names = _network_candidates(units) or ["(fixed parts only)"] * bool(units)
            pending = {k.partition("@")[0] for k in self._jobs if self._reattachable(k)}
            return 2 * sum(1 for name in names if f"uniform:{name}" not in pending)
        keys = {unit_key(u) for u in units}
        return 2 * sum(1 for k in keys if not self._reattachable(k))

    # -- configuration, client and calls -----------------------------------------------

    def check_configured(self) -> None:
        """Raise one clear `HwnasError` unless a client is injected or AI Hub is configured."""
        if self._client is None:
            check_configured()

    def _hub(self):
        if self._client is None:
            from qai_hub.client import Client

            self._client = Client(config=load_config())
        self._client.set_verbose(False)  # a verbose client prints progress bars to stdout
        return self._client

    def _call(self, what: str, fn: Callable, *args, retry_connection: bool = True, **kwargs):
        """`fn(*args, **kwargs)` -- the one place AI Hub calls are retried (module docstring).

        Connection errors and 5xx (`InternalError`) are retried with back-off from
        `RECONNECT_S` while the next try still starts within `retry_budget_s` of the first
        (not at all without `retry_connection`: a job may have been created, and rerunning
        re-attaches instead); rate limits on `BACKOFF_S` doubling, `retries` times. The
        first retry is one warning line, later ones are debug notes."""
        from qai_hub.client import InternalError, RateLimitedError, UserError

        started, attempt = self._clock(), 0
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
                if not retry_connection or self._clock() - started + delay > self.options.retry_budget_s:
                    delay = None
            except UserError as err:
                raise HwnasError(self._user_error(err, what)) from None
            if delay is None:
                break
            if attempt == 1:
                limit = (f"up to {self.options.retries} times" if reason == "rate-limited"
                         else f"for up to {self.options.retry_budget_s:g} s")
                log.warning("AI Hub %s while %s; retrying %s (--verbose shows each try)", reason, what, limit)
            else:
                log.debug("AI Hub %s while %s; try %d in %.0f s", reason, what, attempt + 1, delay)
            self._sleep(delay)
        tries = f"{attempt} {'try' if attempt == 1 else 'tries'} in {self._clock() - started:.0f} s"
        if reason == "rate-limited":
            raise ServiceError(
                f"AI Hub kept rate-limiting requests while {what} ({tries}); wait a few minutes and run the "
                "same command again (submitted jobs are re-attached, not paid for twice)."
            )
        raise ServiceError(
            f"cannot reach Qualcomm AI Hub at {self._api_url()} while {what} ({tries}); check the network and the "
            "service status, then run the same command again (submitted jobs are re-attached, not paid for twice)."
        )

    def _api_url(self) -> str:
        try:
            return str(self._client.config.api_url)
        except Exception:  # no client or configuration yet
            return "its address"

    def _user_error(self, err: Exception, what: str) -> str:
        """One line of our own for the client's (multi-line, boxed) `UserError`."""
        text = self._redact(one_line(str(err)))
        lowered = text.lower()
        if "authenticate" in lowered:
            return AUTH_FAILED
        if "configuration" in lowered or "api token is missing" in lowered:
            return NOT_CONFIGURED
        if "upgrade" in lowered or "no longer supported" in lowered:  # HTTP 426: the service refuses this client
            return (f"AI Hub no longer accepts this qai-hub client ({self.client_version}): upgrade qai-hub "
                    f"(`{UPGRADE}`) and run the same command again.")
        if text.endswith("is not available."):
            return self._unknown_device()
        return f"AI Hub refused {what}: {text.rstrip('.')}."

    def _redact(self, text: str) -> str:
        """`text` without the API token (server messages should not carry it; make sure)."""
        try:
            token = self._client.config.api_token if self._client is not None else None
        except Exception:  # no configuration: nothing to hide
            token = None
        return text.replace(token, "***") if token else text

    def _unknown_device(self) -> str:
        name, attributes = self.device_spec()
        spec = ", ".join([name] * bool(name) + list(attributes))
        shown = self.options.device if spec == self.options.device else f"{self.options.device} ({spec})"
        return (
            f"AI Hub has no device matching {shown}; list the devices with `qai-hub list-devices` and pass a "
            "device name or a chipset: attribute with --device."
        )

    def _resolve_device(self, hub):
        from qai_hub.client import Device

        name, attributes = self.device_spec()
        found = self._call(f"looking up device {self.options.device!r}", hub.get_devices, name=name, attributes=list(attributes))
        if not found:
            raise HwnasError(self._unknown_device())
        log.info("AI Hub device %s: %s", self.options.device, ", ".join(sorted({d.name for d in found})))
        return Device(name=name, attributes=list(attributes))

    # -- the job book ----------------------------------------------------------------------

    def attach(self, jobs: dict[str, Any], save: Callable[[], None]) -> None:
        """Keep job ids in `jobs` (the table sidecar's book) and `save()` after every change.

        Entries: key -> {compile, profile, setup, state, compile_options (as sent)}, and once done (per-unit mode)
        `used` (which iterations the row's statistics came from) and `tools` (tool
        versions such as QAIRT, when the profile carries them); `pending` entries whose
        setup (device, runtime, compute unit, iterations, precision) matches are re-attached, `done`
        and `failed` ones are history (a rerun or `--force` submits anew).
        """
        self._jobs, self._save = jobs, save

    def _setup(self) -> str:
        o = self.options
        tail = "" if o.precision == "fp32" else f"|{o.precision}"  # fp32 keeps the setup books written before precisions
        return f"{self.device}|{o.target_runtime}|{o.compute_unit}|{o.max_profiler_iterations}{tail}"

    def _reattachable(self, key: str | None) -> bool:
        entry = self._jobs.get(key) if key else None
        return isinstance(entry, dict) and entry.get("state") == "pending" and entry.get("setup") == self._setup()

    def _book(self, key: str | None, **fields) -> None:
        if key is None:
            return
        entry = self._jobs.setdefault(key, {})
        entry.update(fields)
        self._save()

    # -- submit everything, then wait for everything ----------------------------------------

    def _run(self, tracks: list[_Track]) -> None:
        """Re-attach or submit compile + profile jobs for every track, then wait for all."""
        hub = self._hub()
        device = self._resolve_device(hub)
        for t in tracks:
            self._reattach(hub, t)
        fresh = [t for t in tracks if t.compile is None]
        if fresh:
            with tempfile.TemporaryDirectory(prefix="hwnas-qai-hub-") as tmp:
                for t in fresh:
                    self._submit_compile(hub, t, device, Path(tmp))
        queued = [t for t in tracks if t.profile is None]
        for t in queued:
            self._submit_profile(hub, t, device)
        log.info(
            "AI Hub: %d compile and %d profile job(s) submitted, %d re-attached (ids in the job book)",
            len(fresh), sum(t.profile is not None for t in queued), len(tracks) - len(fresh),
        )
        self._wait([job for t in tracks for job in (t.compile, t.profile) if job is not None])

    def _reattach(self, hub, t: _Track) -> None:
        if not self._reattachable(t.key):
            return
        entry = self._jobs[t.key]
        try:
            t.compile = self._call(f"re-attaching to job {entry['compile']}", hub.get_job, entry["compile"])
            if entry.get("profile"):
                t.profile = self._call(f"re-attaching to job {entry['profile']}", hub.get_job, entry["profile"])
        except HwnasError as err:
            if "could not be found" not in str(err):
                raise
            log.warning("%s; submitting %s anew", err, t.label)
            t.compile = t.profile = None
            self._book(t.key, state="lost")
            return
        log.debug("re-attached to AI Hub jobs %s for %s", ", ".join(j.job_id for j in (t.compile, t.profile) if j), t.label)

    def _submit_compile(self, hub, t: _Track, device, tmp: Path) -> None:
        from hwnas import onnx_export

        stem = (t.key or "network").replace(":", "-").replace("@", "-")
        path = onnx_export.to_onnx(t.build(), t.input_shape, tmp / f"{stem}.onnx")
        if t.node_names is not None:
            import onnx

            t.node_names.update({hub_profile.normalise(n.name): n.name for n in onnx.load(str(path)).graph.node})
        model = self._call(f"uploading {t.label}", hub.upload_model, str(path), name=path.name)
        options = self.compile_options()
        t.compile = self._call(
            f"submitting the compile job for {t.label}", hub.submit_compile_job, model, device,
            name=f"hwnas {t.label}", input_specs={"x": (tuple(t.input_shape), "float32")},
            options=options, calibration_data=self.calibration_data(t.input_shape), retry=False, retry_connection=False,
        )
        self._book(t.key, compile=t.compile.job_id, profile=None, setup=self._setup(), state="pending", compile_options=options)
        log.debug("submitted AI Hub compile job %s for %s", t.compile.job_id, t.label)

    def _submit_profile(self, hub, t: _Track, device) -> None:
        # 0.56 servers give a compile job its target model on creation (seed_target_model), so the
        # profile job can be queued behind it at once; an unseeded one needs the compile to finish.
        if getattr(t.compile, "_target_model", None) is None:
            self._wait([t.compile])
        if self._call(f"checking job {t.compile.job_id}", t.compile.get_status).failure:
            return  # reported with its message when results are collected
        target = t.compile.get_target_model()
        if target is None:
            return
        t.profile = self._call(
            f"submitting the profile job for {t.label}", hub.submit_inference_job, target, device,
            name=f"hwnas {t.label}", options=self.profile_options(), profile=True, retry=False, retry_connection=False,
        )
        self._book(t.key, profile=t.profile.job_id)
        log.debug("submitted AI Hub profile job %s for %s", t.profile.job_id, t.label)

    def _wait(self, jobs: list) -> None:
        """Poll all jobs until each has finished; after `timeout_s` raise naming the ones left."""
        deadline = self._clock() + self.options.timeout_s
        pending = {job.job_id: job for job in jobs}
        shown = -1
        while pending:
            for job_id, job in list(pending.items()):
                if self._call(f"checking job {job_id}", job.get_status).finished:
                    del pending[job_id]
            if not pending:
                break
            if len(pending) != shown:
                log.info("waiting for %d AI Hub job(s) to finish", len(pending))
                shown = len(pending)
            if self._clock() >= deadline:
                ids = sorted(pending)
                listed = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
                raise HwnasError(
                    f"AI Hub jobs {listed} were still running after {self.options.timeout_s:g} s; run the same "
                    "command again later to re-attach to them (their ids are kept in the table's sidecar)."
                )
            self._sleep(self.options.poll_s)

    def _profile(self, t: _Track) -> dict:
        """The downloaded profile of a finished track; `MeasurementError` if a job failed."""
        for stage, job in (("compile", t.compile), ("profile", t.profile)):
            if job is None:
                raise MeasurementError(f"no AI Hub profile job could be submitted for {t.label} (compile job {t.compile.job_id}).")
            status = self._call(f"checking job {job.job_id}", job.get_status)
            if status.failure:
                message = " ".join((status.message or status.code).split())
                raise MeasurementError(
                    f"AI Hub {stage} job {job.job_id} for {t.label} failed: {self._redact(message)} (see {job.url})."
                )
        profile = self._call(f"downloading the profile of job {t.profile.job_id}", t.profile.download_profile)
        if not profile:
            raise MeasurementError(f"AI Hub profile job {t.profile.job_id} for {t.label} finished without a profile; re-run it.")
        return profile

    def _finish(self, outcomes: list[tuple[_Track, MeasurementError | None]]) -> None:
        for t, error in outcomes:
            self._book(t.key, state="failed" if error else "done", **({} if error else t.record))
        errors = [e for _, e in outcomes if e]
        if errors:
            more = f" ({len(errors) - 1} more failed; see the log)" if len(errors) > 1 else ""
            for e in errors[1:]:
                log.error("%s", e)
            raise MeasurementError(f"{str(errors[0]).rstrip('.')}{more}.")

    # -- per-unit mode ------------------------------------------------------------------------

    def measure(
        self, units: Sequence[Unit], on_result: Callable[[Measurement], None] | None = None
    ) -> list[Measurement]:
        """Profile each unit alone on the device (per-unit mode); see the module docstring."""
        if self.options.mode == "whole-network":
            raise HwnasError(
                "whole-network mode profiles networks of a search space: call measure_space(space, image_size, units) "
                "(as `hwnas build-lut` does), or use --mode per-unit."
            )
        if not units:
            return []
        self.check_configured()
        first: dict[str, Unit] = {}
        for u in units:
            first.setdefault(unit_key(u), u)  # one job pair per table key
        tracks = {key: _Track(key, _describe(u), _returns(u.module), tuple(u.input_shape)) for key, u in first.items()}
        self._run(list(tracks.values()))
        results: dict[str, Measurement] = {}
        outcomes = []
        for key, t in tracks.items():
            u = first[key]
            try:
                profile = self._profile(t)
                source = f"job {t.profile.job_id} ({t.label})"
                m = hub_profile.measurement(
                    profile, kind=u.kind, name=u.name, input_shape=u.input_shape, device=self.device,
                    runtime=self.runtime(), source=source, cold=self.options.cold_iterations,
                )
                t.record = self._provenance(profile, source)
            except MeasurementError as err:
                outcomes.append((t, err))
                continue
            if on_result:
                on_result(m)
            results[key] = m
            outcomes.append((t, None))
        self._finish(outcomes)
        return [results[unit_key(u)] for u in units]

    def _provenance(self, profile: dict, source: str) -> dict[str, Any]:
        """What a row was computed from, for the job book: the iterations used, tool versions (e.g. QAIRT)."""
        record: dict[str, Any] = {"used": hub_profile.timing(profile, source, self.options.cold_iterations).used}
        tools = hub_profile.tool_versions(profile)
        if tools:
            record["tools"] = tools
        return record

    # -- whole-network mode ---------------------------------------------------------------------

    def measure_space(
        self, space: SearchSpace, image_size: int, units: Sequence[Unit],
        on_result: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Per-unit mode: `measure(units)`. Whole-network mode: profile one uniform network per
        candidate that `units` need and attribute its per-layer times (module docstring)."""
        if self.options.mode == "per-unit":
            return self.measure(units, on_result)
        if not units:
            return []
        self.check_configured()
        positions = space.positions(image_size)
        fixed = space.fixed_units(image_size)
        unnamed = sorted({u.name for u in fixed if not u.path})
        if unnamed:
            raise HwnasError(
                f"space {space.name!r} gives no module path for its fixed part(s) {', '.join(unnamed)}, which "
                "whole-network mode needs to attribute layer times; use --mode per-unit."
            )
        input_shape = tuple(space.example_input(image_size).shape)
        networks = {c: _uniform(space, positions, c) for c in _network_candidates(units, positions)}
        tracks = [
            _Track(f"uniform:{c}@{shape_str(input_shape)}", f"the uniform {c!r} network at {shape_str(input_shape)}",
                   _frozen(space, arch), input_shape)
            for c, arch in networks.items()
        ]
        self._run(tracks)
        samples: dict[tuple[str, str, Shape], list[float]] = {}
        outcomes = []
        for t, arch in zip(tracks, networks.values()):
            try:
                _attribute_network(self._profile(t), t, positions, fixed, arch, samples)
                outcomes.append((t, None))
            except MeasurementError as err:
                outcomes.append((t, err))
        results = []
        for u in units:
            times = samples.get((u.kind, u.name, tuple(u.input_shape)))
            if not times:
                if any(e for _, e in outcomes):
                    continue  # its network failed: reported below
                raise MeasurementError(f"no profiled network contains {_describe(u)}; use --mode per-unit for it.")
            m = Measurement(
                kind=u.kind, name=u.name, input_shape=tuple(u.input_shape), median_ms=float(np.median(times)),
                p10_ms=float(np.percentile(times, 10)), p90_ms=float(np.percentile(times, 90)), runs=len(times),
                device=self.device, runtime=self.runtime(),
            )
            if on_result:
                on_result(m)
            results.append(m)
        self._finish(outcomes)
        return results


    # -- whole networks: on-device accuracy, end-to-end check and per-layer breakdown -------------

    def check_accuracy(self, model, inputs, reference, calibration=None):
        """PSNR of `model`'s outputs on the device against PyTorch's `reference` outputs on `inputs`
        (`hwnas.backends.qai_hub_accuracy.check_on_device`): one compile and one inference job."""
        from hwnas.backends.qai_hub_accuracy import check_on_device

        return check_on_device(self, model, inputs, reference, calibration)


    def measure_network(self, module: "nn.Module", input_shape: Sequence[int]) -> Measurement:
        """End-to-end latency of `module` profiled whole (kind and name "network"), taken as a
        per-unit row is: p10/median/p90 of the warm iterations, the service's estimate, peak memory.
        Not kept in the job book: an interrupted check is submitted again."""
        profile, t, _ = self._profile_network(module, input_shape)
        return hub_profile.measurement(
            profile, kind="network", name="network", input_shape=t.input_shape, device=self.device,
            runtime=self.runtime().removesuffix(" whole-network"), source=f"job {t.profile.job_id} ({t.label})",
            cold=self.options.cold_iterations,
        )

    def breakdown(self, module: "nn.Module", input_shape: Sequence[int]) -> "pd.DataFrame":
        """Per-layer times from one profile job (the one `measure_network` ran, if it was the same
        module): columns `name` (the exported ONNX node name the layer stands for, e.g.
        `/enc0/enc0.0/norm1/ReduceMean`, else the layer name as reported),
        `op_type`, `ms` (execution_time, assumed µs, / 1000), `runtime_name`, `compute_unit`.
        `frame.attrs["run_ms"]` is the pass's time as `measure_network` gives it, to compare with the sum."""
        import pandas as pd

        profile, t, names = self._profile_network(module, input_shape)
        rows = [layer for layer in hub_profile.layers(profile) if layer.time_us is not None]
        if not rows:
            raise MeasurementError(
                f"the profile of AI Hub job {t.profile.job_id} has no per-layer times; this runtime "
                "(--target-runtime) reports none, try qnn_context_binary."
            )
        frame = pd.DataFrame([
            {"name": hub_profile.exported_name(layer.name, names), "op_type": layer.type,
             "ms": layer.time_us / hub_profile.US_PER_MS, "runtime_name": layer.name, "compute_unit": layer.compute_unit}
            for layer in rows
        ])
        frame.attrs["run_ms"] = hub_profile.timing(profile, t.label, self.options.cold_iterations).median_us / hub_profile.US_PER_MS
        return frame

    def _profile_network(self, module: "nn.Module", input_shape: Sequence[int]) -> tuple[dict, _Track, dict[str, str]]:
        """(profile, track, normalised -> exported node names) of `module` profiled whole; the
        last one is kept, so `measure_network` then `breakdown` of the same module cost one job."""
        shape = tuple(int(d) for d in input_shape)
        last = self._last_network
        if last is not None and last[0] is module and last[1] == shape:
            return last[2:]
        self.check_configured()
        names: dict[str, str] = {}
        t = _Track(None, f"the network at {shape_str(shape)}", _returns(module), shape, node_names=names)
        self._run([t])
        profile = self._profile(t)
        self._last_network = (module, shape, profile, t, names)
        return profile, t, names


# -- helpers --------------------------------------------------------------------------------------


def _describe(u: Unit) -> str:
    return f"{u.kind} {u.name!r} at {shape_str(u.input_shape)}"


def _returns(module: "nn.Module") -> Callable[[], "nn.Module"]:
    return lambda: module


def _network_candidates(units: Sequence[Unit], positions: Sequence[Position] = ()) -> list[str]:
    """Candidates whose uniform network `units` need, in first-seen order; fixed parts alone
    need one network (given `positions`: the first candidate of the first position)."""
    names = list(dict.fromkeys(u.name for u in units if u.kind == "candidate"))
    if not names and units and positions:
        names = [positions[0].candidates[0]]
    return names


def _uniform(space: SearchSpace, positions: Sequence[Position], candidate: str) -> Architecture:
    """`candidate` wherever it is offered, else the position's first candidate."""
    return Architecture(
        space=space.name, choices={p.label: candidate if candidate in p.candidates else p.candidates[0] for p in positions}
    )


def _frozen(space: SearchSpace, arch: Architecture) -> Callable[[], "nn.Module"]:
    from hwnas.space import freeze

    return lambda: freeze(space, arch)


def _attribute_network(
    profile: dict, t: _Track, positions: Sequence[Position], fixed: Sequence[Unit], arch: Architecture,
    samples: dict[tuple[str, str, Shape], list[float]],
) -> None:
    """Add each position's and fixed part's summed layer time (ms) to `samples[(kind, name, shape)]`."""
    owners: dict[str, tuple[str, str, Shape]] = {p.path: ("candidate", arch.choices[p.label], tuple(p.input_shape)) for p in positions}
    owners.update({u.path: ("fixed", u.name, tuple(u.input_shape)) for u in fixed})
    rows = hub_profile.layers(profile)
    found = attribute(rows, owners)
    job = t.profile.job_id
    unnamed = [path for path in owners if found.layer_count[path] == 0]
    if unnamed:
        raise MeasurementError(
            f"the profile of AI Hub job {job} ({t.label}) has no layer named after {unnamed[0]!r} ({len(unnamed)} of "
            f"{len(owners)} parts unmatched): its layer names do not carry module paths; use --mode per-unit."
        )
    untimed = [path for path in owners if found.time_us[path] <= 0]
    if untimed:
        raise MeasurementError(
            f"the profile of AI Hub job {job} ({t.label}) has no per-layer execution_time for {untimed[0]!r}; "
            "this runtime reports no layer times: use --mode per-unit."
        )
    ratio = hub_profile.layer_time_ratio(profile)
    total_ms = hub_profile.inference_time_us(profile, t.label) / hub_profile.US_PER_MS
    attributed_ms = sum(found.time_us.values()) / hub_profile.US_PER_MS
    log.info(
        "job %s: %s total %.3f ms; layers attributed %.3f ms, outside every unit %.3f ms; layer sum / total = %s",
        job, t.label, total_ms, attributed_ms, found.unattributed_us / hub_profile.US_PER_MS,
        "n/a" if ratio is None else f"{ratio:.2f}",
    )
    if ratio is not None and not 0.2 <= ratio <= 5.0:
        log.warning(
            "job %s: per-layer times sum to %.2fx the reported total; execution_time may not be microseconds "
            "-- check with --mode per-unit", job, ratio,
        )
    for path, key in owners.items():
        samples.setdefault(key, []).append(found.time_us[path] / hub_profile.US_PER_MS)
