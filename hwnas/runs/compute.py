"""Where and how training computes: device, threads, mixed precision, memory format.

One `Compute` per run, made from `--accelerator` and `--threads` by `compute_for`, and
passed to whatever moves tensors or runs forward passes -- no hidden global device.

What each setting does was measured at the paper preset (NAFNet-w32, batch 8, crop 64,
one AdamW step; `benchmarks/bench_throughput.py`):

- CPU (2-core AMD EPYC, AVX2, no native bf16): two torch threads 1.8x faster than one;
  channels-last 1.26x *slower*; bf16 autocast 11x slower (emulated). So on the CPU:
  float32, contiguous, all cores unless `--threads` says otherwise. OpenMP's idle
  threads must sleep rather than spin (`OMP_WAIT_POLICY=PASSIVE`, which the `hwnas`
  command sets unless the user did; it has to be set before torch loads): with other
  processes on the cores, spinning made a step 5x slower (17 s vs 3.5 s at load 5).
  At small steps (tiny, small presets) one thread is as fast idle and 2-3x faster busy, so without
  `--threads` a step below `ONE_THREAD_MACS` runs on one thread (`auto_threads`).
- CUDA: bf16 autocast (tensor cores; the loss is taken in float32), channels-last,
  `cudnn.benchmark` (fixed crop shapes), batches pinned by the loader and copied
  with `non_blocking`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from hwnas.contracts.errors import naming, setting


@dataclass(frozen=True)
class Compute:
    device: torch.device
    threads: int  # torch intra-op threads (CPU work, including on a GPU run's host)
    autocast: torch.dtype | None  # mixed precision of forward passes, or None for float32
    channels_last: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def module(self, net: nn.Module) -> nn.Module:
        """`net` on the device, in this compute's memory format."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def tensor(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device (asynchronous from pinned memory), in this compute's memory format."""
        x = x.to(self.device, non_blocking=self.cuda)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        """Context for training forward passes (mixed precision where it pays)."""
        if self.autocast is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.autocast):
            yield


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def device_for(accelerator: str) -> torch.device:
    """The torch device of `--accelerator` (cpu|cuda); cuda without a visible GPU is a one-line error.

    The one place an accelerator is checked: training (`compute_for`) and inference
    (`hwnas.deploy.inference`) both resolve it here, before anything is written.
    """
    if accelerator not in ("cpu", "cuda"):
        raise naming(f"unknown accelerator {accelerator!r}; pass {{cpu}} or {{cuda}}.", cpu=setting("accelerator", "cpu"),
                     cuda=setting("accelerator", "cuda"))
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise naming("{cuda} was given but PyTorch sees no CUDA GPU; pass {cpu}.", cuda=setting("accelerator", "cuda"),
                     cpu=setting("accelerator", "cpu"))
    return torch.device(accelerator)


# Below this many forward MACs per training step (batch included) a second CPU thread costs
# more in hand-overs than it computes, and far more beside other work (benchmarks/bench_threads.py,
# 2 cores, medians of 2 repeats; s/step one thread / two passive / two active):
#   tiny search (36 M)  idle 0.067 / 0.088 / 0.076   busy 0.078 / 0.254 / 0.262
#   small train (808 M) idle 0.270 / 0.239 / 0.205   busy 0.265 / 0.465 / 0.686
#   paper train (8.1 G) idle 5.62  / 3.55  / 3.15    busy 5.17  / 6.06  / 8.46
# So one thread up to the small preset; every core (passive) above, where idle it is 1.6x faster.
ONE_THREAD_MACS = 2_000_000_000


def auto_threads(accelerator: str, net: nn.Module, batch_shape: tuple[int, ...]) -> int | None:
    """Torch threads when --threads is not given: 1 for a small CPU step, else None (every usable core).

    None too on CUDA, and where the user set OMP_NUM_THREADS (torchrun does): their choice stands.
    """
    from hwnas.tables.cost import count_macs

    if accelerator != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return None
    return 1 if count_macs(net, batch_shape) < ONE_THREAD_MACS else None


def compute_for(accelerator: str, threads: int | None = None) -> Compute:
    """The `Compute` for `--accelerator` (cpu|cuda) and `--threads`.

    Sets torch's intra-op threads for this process when `threads` is given (None
    leaves torch's own choice: every usable core, or OMP_NUM_THREADS when set), and
    cuDNN autotuning on CUDA.
    """
    device_for(accelerator)
    if threads is not None:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    if accelerator == "cpu":
        return Compute(torch.device("cpu"), threads, None, False)
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda", torch.cuda.current_device())
    bf16 = torch.cuda.is_bf16_supported()
    return Compute(device, threads, torch.bfloat16 if bf16 else None, True)
