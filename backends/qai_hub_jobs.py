"""AI Hub compile + profile job pairs: submitted all at once, re-attached from the table's job book, read back.

Every job is submitted before any is waited for; the server queues a profile job on its
compile job's target model at once, so a whole batch runs in parallel. Submitted job
ids are kept in the job book (`attach`), saved before any waiting, so an interrupted
build re-attaches to its jobs (`qai_hub.get_job`) instead of paying for them again.
Failures never become numbers: a failed job raises `MeasurementError` naming the unit,
the job id and AI Hub's message.

What a finished pair used is read back from its results and kept in the book: the tool
versions of the compile and the profile job (`HubSession.tool_versions`) and the QAIRT
version that ran. A table holds one QAIRT version: a job that ran another one than the
rows already in the book is refused (`MeasurementError`), so a table resumed weeks
later cannot mix compilers.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hwnas.backends import qai_hub_profile as hub_profile
from hwnas.backends.qai_hub_client import HubSession, NotFound
from hwnas.contracts.latency import MeasurementError, Shape

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

QAIRT_NAMES = ("QAIRT", "QNN")  # how results name the Qualcomm AI Runtime (older servers: QNN)


@dataclass
class Track:
    """One model to compile and profile, and its jobs once submitted (or re-attached)."""

    key: str | None  # job-book key; None: not kept in the book (never re-attached)
    label: str  # for messages, e.g. "candidate 'naf' at 1x8x32x32"
    build: Callable[[], "nn.Module"] | None  # called only when the model has to be exported
    input_shape: Shape
    file: Path | None = None  # an ONNX file uploaded as it is, instead of `build()`'s export
    input_name: str = "x"  # the model's input (hwnas exports name it x)
    compile_options: str | None = None  # None: the backend's
    compile: Any = None  # qai_hub.CompileJob
    profile: Any = None  # qai_hub.InferenceJob (profile=True)
    node_names: dict[str, str] | None = None  # if a dict: filled with normalised -> exported ONNX node names
    record: dict[str, Any] = field(default_factory=dict)  # kept in the job book when finished: what the row used


class Jobs:
    """Job pairs of one backend: `setup()` says what a re-attachable pending entry must match,
    `compile_options()` and `profile_options()` what new jobs get, `calibration(name, shape)`
    the calibration data of a compile job (None: not quantised)."""

    def __init__(self, session: HubSession, setup: Callable[[], str], compile_options: Callable[[], str],
                 profile_options: Callable[[], str], calibration: Callable[[Any, str, Shape], Any]):
        self.session = session
        self.setup = setup
        self.compile_options = compile_options
        self.profile_options = profile_options
        self.calibration = calibration
        self.book: dict[str, Any] = {}
        self._save: Callable[[], None] = lambda: None
        self.qairt: set[str] = set()  # QAIRT versions the jobs of this table ran with

    # -- the job book ----------------------------------------------------------------------

    def attach(self, book: dict[str, Any], save: Callable[[], None]) -> None:
        self.book, self._save = book, save
        self.qairt = {e["qairt"] for e in book.values() if isinstance(e, dict) and e.get("state") == "done" and e.get("qairt")}

    def reattachable(self, key: str | None) -> bool:
        entry = self.book.get(key) if key else None
        return isinstance(entry, dict) and entry.get("state") == "pending" and entry.get("setup") == self.setup()

    def done(self, key: str) -> dict[str, Any] | None:
        """The finished entry of `key` measured with the same setup, if any."""
        entry = self.book.get(key)
        return entry if isinstance(entry, dict) and entry.get("state") == "done" and entry.get("setup") == self.setup() else None

    def note(self, key: str | None, **fields) -> None:
        if key is None:
            return
        self.book.setdefault(key, {}).update(fields)
        self._save()

    # -- submit everything, then wait for everything ----------------------------------------

    def run(self, tracks: list[Track], device) -> None:
        """Re-attach or submit compile + profile jobs for every track, then wait for all."""
        hub = self.session.client()
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
        self.session.wait([job for t in tracks for job in (t.compile, t.profile) if job is not None])

    def _reattach(self, hub, t: Track) -> None:
        if not self.reattachable(t.key):
            return
        entry = self.book[t.key]
        call = self.session.call
        try:
            t.compile = call(f"re-attaching to job {entry['compile']}", hub.get_job, entry["compile"])
            if entry.get("profile"):
                t.profile = call(f"re-attaching to job {entry['profile']}", hub.get_job, entry["profile"])
        except NotFound as err:
            log.warning("%s; submitting %s anew", err, t.label)
            t.compile = t.profile = None
            self.note(t.key, state="lost")
            return
        log.debug("re-attached to AI Hub jobs %s for %s", ", ".join(j.job_id for j in (t.compile, t.profile) if j), t.label)

    def _submit_compile(self, hub, t: Track, device, tmp: Path) -> None:
        path = t.file or self._export(t, tmp)
        model = self.session.call(f"uploading {t.label}", hub.upload_model, str(path), name=path.name)
        options = self.compile_options() if t.compile_options is None else t.compile_options
        calibration = self.calibration(hub, t.input_name, t.input_shape) if "--quantize_full_type" in options else None
        t.compile = self.session.call(
            f"submitting the compile job for {t.label}", hub.submit_compile_job, model, device,
            name=f"hwnas {t.label}", input_specs={t.input_name: (tuple(t.input_shape), "float32")},
            options=options, calibration_data=calibration, retry=False, retry_connection=False,
        )
        self.note(t.key, compile=t.compile.job_id, profile=None, setup=self.setup(), state="pending", compile_options=options)
        log.debug("submitted AI Hub compile job %s for %s", t.compile.job_id, t.label)

    @staticmethod
    def _export(t: Track, tmp: Path) -> Path:
        from hwnas.deploy import onnx_export

        stem = (t.key or "network").replace(":", "-").replace("@", "-")
        path = onnx_export.to_onnx(t.build(), t.input_shape, tmp / f"{stem}.onnx")
        if t.node_names is not None:
            import onnx

            t.node_names.update({hub_profile.normalise(n.name): n.name for n in onnx.load(str(path)).graph.node})
        return path

    def _submit_profile(self, hub, t: Track, device) -> None:
        # 0.56 servers give a compile job its target model on creation (seed_target_model), so the
        # profile job can be queued behind it at once; an unseeded one needs the compile to finish.
        if getattr(t.compile, "_target_model", None) is None:
            self.session.wait([t.compile])
        if self.session.call(f"checking job {t.compile.job_id}", t.compile.get_status).failure:
            return  # reported with its message when results are collected
        target = t.compile.get_target_model()
        if target is None:
            return
        options = self.profile_options()
        t.profile = self.session.call(
            f"submitting the profile job for {t.label}", hub.submit_inference_job, target, device,
            name=f"hwnas {t.label}", options=options, profile=True, retry=False, retry_connection=False,
        )
        self.note(t.key, profile=t.profile.job_id, profile_options=options)
        log.debug("submitted AI Hub profile job %s for %s", t.profile.job_id, t.label)

    # -- results ------------------------------------------------------------------------------

    def profile(self, t: Track) -> dict:
        """The downloaded profile of a finished track, its tool versions in `t.record`;
        `MeasurementError` if a job failed or it ran another QAIRT version than the table's rows."""
        for stage, job in (("compile", t.compile), ("profile", t.profile)):
            if job is None:
                raise MeasurementError(f"no AI Hub profile job could be submitted for {t.label} (compile job {t.compile.job_id}).")
            message = self.session.failure(job)
            if message:
                raise MeasurementError(f"AI Hub {stage} job {job.job_id} for {t.label} failed: {message} (see {job.url}).")
        profile = self.session.call(f"downloading the profile of job {t.profile.job_id}", t.profile.download_profile)
        if not profile:
            raise MeasurementError(f"AI Hub profile job {t.profile.job_id} for {t.label} finished without a profile; re-run it.")
        self._versions(t)
        return profile

    def _versions(self, t: Track) -> None:
        tools = {stage: self.session.tool_versions(job) for stage, job in (("compile", t.compile), ("profile", t.profile))}
        t.record["tools"] = tools
        qairt = next((v for stage in ("profile", "compile") for name, v in tools[stage].items() if name in QAIRT_NAMES), None)
        if qairt is None:
            return
        t.record["qairt"] = qairt
        if self.qairt and qairt not in self.qairt:
            table = ", ".join(sorted(self.qairt))
            pin = ".".join(sorted(self.qairt)[0].split(".")[:2])
            raise MeasurementError(
                f"AI Hub ran {t.label} with QAIRT {qairt}, but this table's rows were measured with QAIRT {table}; "
                f"pass --qairt-version {pin} to complete it with the same version, or --force to re-measure it all."
            )
        self.qairt.add(qairt)

    def finish(self, outcomes: list[tuple[Track, MeasurementError | None]]) -> None:
        """Book every track's outcome; raise the first error (the others logged)."""
        for t, error in outcomes:
            self.note(t.key, state="failed" if error else "done", **({} if error else t.record))
        errors = [e for _, e in outcomes if e]
        if errors:
            more = f" ({len(errors) - 1} more failed; see the log)" if len(errors) > 1 else ""
            for e in errors[1:]:
                log.error("%s", e)
            raise MeasurementError(f"{str(errors[0]).rstrip('.')}{more}.")
