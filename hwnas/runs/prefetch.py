"""Batches for the coming steps, made in a background thread while the current step computes.

A task's `batch(split, seed, epoch, step, batch_size)` is a pure function of its
arguments (images are decoded once, crops cut from memory), so a batch made ahead of
time is bit-identical to one made on demand: prefetching changes when a batch is
made, never what it holds, whatever the depth and across a resume.

The loader walks the keys the loop will ask for, in order; `get(key)` returns the
prepared batch when the loop asks for the expected key, and makes it on demand
otherwise (a resumed or re-planned loop simply falls back to that). With `pin`, the
tensors are pinned so that copies to a GPU run asynchronously.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Hashable, Iterable, Iterator

import torch

Batch = tuple[torch.Tensor, ...]


class Prefetcher:
    def __init__(self, make: Callable[[Hashable], Batch], keys: Iterable[Hashable], depth: int = 2, pin: bool = False):
        self.make, self.pin = make, pin
        self.depth = depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = None
        if depth > 0:
            self._thread = threading.Thread(target=self._fill, args=(iter(keys),), daemon=True, name="hwnas-prefetch")
            self._thread.start()

    def _prepare(self, key: Hashable) -> Batch:
        batch = self.make(key)
        return tuple(t.pin_memory() for t in batch) if self.pin else batch

    def _fill(self, keys: Iterator[Hashable]) -> None:
        for key in keys:
            if self._stop.is_set():
                return
            try:
                item = (key, self._prepare(key), None)
            except BaseException as err:  # handed to the consumer, which makes the batch itself and raises there
                item = (key, None, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def get(self, key: Hashable) -> Batch:
        """The batch for `key`: the prefetched one if it is next, else made now."""
        if self._thread is not None:
            while True:
                try:
                    got, batch, err = self._queue.get(timeout=0.05)
                except queue.Empty:
                    if not self._thread.is_alive():
                        break
                    continue
                if got == key and err is None:
                    return batch
                if got == key:
                    break  # the error repeats below, in the caller's thread
                # Out of step (the loop asked for something else): stop prefetching, make on demand.
                self.close()
                break
        return self._prepare(key)

    def close(self) -> None:
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)
        self._thread = None

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
