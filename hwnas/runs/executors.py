"""Where a sweep's independent runs execute: here, one after another (the default), or on a Ray cluster.

A sweep's runs (searches, baselines, fine-tunings) share nothing but their inputs and each
writes its own run folder, so they can go anywhere that sees the output folder. An
executor maps a function over run descriptions and returns the results in order.

`ray` (the optional extra, `pip install 'hwnas[ray]'`) runs each item as a Ray task that
asks for `cpus` CPUs and `gpus` GPUs. It connects to a running cluster when there is one
(`RAY_ADDRESS`, or a cluster started on this machine with `ray start --head`), else starts
a local Ray instance for the map and shuts that down afterwards; a cluster it did not start is only
disconnected from. A cluster's nodes need hwnas (the same version) installed and the
output folder at the same path. When runs fail, the others still finish (their folders
stay, for a resume), and the error names every failed item with its message.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from typing import Any, Callable, Protocol, Sequence, TypeVar

from hwnas.contracts.errors import HwnasError, naming, setting

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")
INSTALL_RAY = "pip install 'hwnas[ray]'"


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`fn` applied to every item; results in the order of `items`."""


class LocalExecutor:
    """One run after another in this process (the default)."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]


def item_name(item: Any) -> str:
    """How an error names an item: its `name` (a sweep's run folder) when it has one, else its repr."""
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else repr(item)


def import_ray():
    """The `ray` module, or one sentence on how to install it."""
    try:
        import ray
    except ImportError:
        raise HwnasError(f"the ray executor needs Ray, which is not installed: {INSTALL_RAY}") from None
    return ray


class RayExecutor:
    """Each item a Ray task asking for `cpus` CPUs and `gpus` GPUs; results in order.

    A map connects to Ray if this process is not connected yet and disconnects at its end;
    within `with RayExecutor() as ex:` the connection (and a local instance it started) lasts
    until the block ends, so several maps pay Ray's start-up once. A connection this process
    already had (`ray.init` by the caller) is used and left open."""

    def __init__(self, *, cpus: float = 1, gpus: float = 0):
        if cpus <= 0 or gpus < 0:
            raise HwnasError(f"a Ray task asks for CPUs > 0 and GPUs >= 0, not cpus={cpus:g}, gpus={gpus:g}")
        self.ray = import_ray()
        self.cpus, self.gpus = cpus, gpus
        self._connected = False  # whether this executor called ray.init (and so calls ray.shutdown)
        self._handlers: dict[int, Any] = {}  # SIGINT/SIGTERM handlers before ray.init, which replaces them
        self._held = False  # inside `with`: keep the connection between maps

    def __enter__(self) -> RayExecutor:
        self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._held = False
        self.close()

    def close(self) -> None:
        """Disconnect, if this executor connected; a local instance it started stops with it."""
        if self._connected:
            self._connected = False
            self.ray.shutdown()  # a driver of a running cluster only disconnects: the cluster stays up
            restore_handlers(self._handlers)

    def connect(self) -> None:
        """Join the cluster RAY_ADDRESS names, else one `ray start` left on this machine, else start a local instance.

        Never another process's local instance (Ray's `address="auto"` would find one): it stops when that
        process ends, taking this sweep's runs with it."""
        ray = self.ray
        if ray.is_initialized():
            return
        self._handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        named = os.environ.get("RAY_ADDRESS")
        address = named or started_cluster()
        if address:
            where = f"RAY_ADDRESS={address}" if named else f"{address} (the cluster `ray start` left on this machine)"
            check_answers(address, where)
            try:
                ray.init(address=address)
            except (ConnectionError, RuntimeError) as err:  # refused, e.g. by Ray's token authentication
                raise HwnasError(f"cannot join the Ray cluster at {where}: {first_line(err)}") from err
            self._connected = True
            return
        # For this executor only. Its workers at the user's priority: Ray starts them at nice 15, where beside any
        # other work on the machine they starve (a training step ran 25x slower on this 2-core machine under load).
        ray.init(address="local", include_dashboard=False, _system_config={"worker_niceness": 0})
        self._connected = True
        self._check_fits()

    def _check_fits(self) -> None:
        """A local instance cannot grow: a task asking more than it has would wait forever, so say so now."""
        have = self.ray.cluster_resources()
        for kind, asked, key in (("CPUs", self.cpus, "CPU"), ("GPUs", self.gpus, "GPU")):
            if asked > have.get(key, 0):
                self.close()
                raise naming(f"each run asks for {asked:g} {kind} ({{{key.lower()}s_per_run}}) but the local Ray "
                             f"instance has {have.get(key, 0):g}; ask for fewer, or set RAY_ADDRESS to a cluster "
                             "that has them", **{f"{key.lower()}s_per_run": setting(f"{key.lower()}s_per_run")})

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        items = list(items)
        if not items:
            return []
        ray = self.ray
        self.connect()
        try:
            task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)(fn)
            refs = [task.remote(item) for item in items]
            results: list[Any] = []
            failed: list[tuple[Any, BaseException]] = []
            try:
                for item, ref in zip(items, refs):  # in order; every task runs whether or not an earlier one failed
                    try:
                        results.append(ray.get(ref))
                    except ray.exceptions.RayError as err:
                        results.append(None)
                        failed.append((item, err))
            except BaseException:  # interrupted here: stop the tasks still running, not only this driver
                for ref in refs:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 -- a task that already ended; the interruption is what matters
                        pass
                raise
        finally:
            if not self._held:
                self.close()
        if failed:
            raise failure(failed, len(items))
        return results


def cause_of(err: BaseException) -> BaseException:
    """The exception a Ray task raised (a RayTaskError wraps it), or Ray's own error (a worker died)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def started_cluster() -> str | None:
    """The address of the cluster `ray start --head` last started on this machine (Ray's own record), if any."""
    try:
        from ray._private.services import find_bootstrap_address  # how ray.init() finds it (Ray 2.10 to 2.60)

        return find_bootstrap_address(None) or None
    except Exception:  # noqa: BLE001 -- a Ray without it: RAY_ADDRESS names the cluster
        return None


def check_answers(address: str, where: str, timeout: float = 10) -> None:
    """Whether something listens at a `host:port` (or `ray://host:port`) address: Ray itself retries an
    unreachable one for minutes before it gives up. `where`: how the error names it."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if not found:
        return  # "auto", "local", or a form Ray resolves itself
    try:
        socket.create_connection((found[1], int(found[2])), timeout=timeout).close()
    except OSError as err:
        raise HwnasError(f"nothing answers at {where} ({err.strerror or err}); start the cluster, or "
                         "unset RAY_ADDRESS (and `ray stop` a stopped one) for a local Ray instance") from err


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def message(err: BaseException) -> str:
    """How an error names a run's failure: an `HwnasError`'s sentence, else its type and first line."""
    if isinstance(err, HwnasError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def failure(failed: list[tuple[Any, BaseException]], total: int) -> HwnasError:
    """One error naming every failed item with its message (in both wordings); the `HwnasError` kind of the
    first failure is kept, so a full disk still exits as one."""
    causes = [cause_of(err) for _, err in failed]

    def sentence(cli: bool) -> str:
        said = [cause.cli if cli and isinstance(cause, HwnasError) else message(cause) for cause in causes]
        if len(failed) == 1:
            head = f"run {item_name(failed[0][0])} failed: {said[0]}"
        else:
            head = f"{len(failed)} of {total} runs failed: " + "; ".join(
                f"{item_name(item)}: {text}" for (item, _), text in zip(failed, said))
        if len(failed) < total:
            head += f" (the other runs finished; {'--resume' if cli else 'resume=True'} redoes only the failed)"
        return head

    kind = type(causes[0]) if isinstance(causes[0], HwnasError) else HwnasError
    try:
        err = kind(sentence(cli=False), cli=sentence(cli=True))
    except TypeError:  # a subclass with its own constructor
        err = HwnasError(sentence(cli=False), cli=sentence(cli=True))
    err.__cause__ = failed[0][1]
    return err


def restore_handlers(handlers: dict[int, Any]) -> None:
    """Put back the signal handlers `ray.init` replaced: the run's own stop handling (`hwnas.runs.run`) comes after it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return
    for sig, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be put back
            signal.signal(sig, handler)


def executor(name: str = "local", *, cpus: float = 1, gpus: float = 0) -> Executor:
    """The executor called `name`; `cpus`/`gpus`: what each run asks of a cluster node."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(cpus=cpus, gpus=gpus)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
