"""Where a sweep's independent runs execute: here, one after another (the default), or on a Ray cluster.

A sweep's runs (searches, baselines, fine-tunings) share nothing but their inputs and each
writes its own run folder, so they can go anywhere that sees the output folder. An
executor maps a function over run descriptions and returns the results in order.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local",)


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`fn` applied to every item; results in the order of `items`."""


class LocalExecutor:
    """One run after another in this process (the default)."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]


def executor(name: str = "local", *, cpus: float = 1, gpus: float = 0) -> Executor:
    """The executor called `name`; `cpus`/`gpus`: what each run asks of a cluster node."""
    if name == "local":
        return LocalExecutor()
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
