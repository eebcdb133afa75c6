"""Data-parallel runs under torchrun: one process per rank, every rank in the same state.

`torchrun --nproc_per_node N -m hwnas search ...` (or `train`) starts N copies of the
command; `session()` joins them into one process group from torchrun's environment
(WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT): gloo for CPU tensors, plus NCCL for
CUDA tensors when PyTorch sees a GPU (each rank then computes on GPU LOCAL_RANK).
Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op, so a single
process runs exactly the code it always ran.

The contract a data-parallel loop keeps (synchronous data parallelism, as in
PyTorch's DistributedDataParallel, with explicit collectives instead of a wrapper
because weights and architecture logits have separate optimisers and a sampled
super-net leaves unused candidates without gradients):

- every rank starts from the same weights (same seed, or the same checkpoint) and
  draws the same Gumbel samples (they are a function of seed, epoch and step);
- `--batch-size` is the global batch: every rank computes the same global batch and
  keeps its own contiguous slice (`shard`) of batch_size / world_size samples, so N
  ranks see the data one process would;
- after backward, gradients are averaged (`average_gradients`), after the optimiser
  step BatchNorm running statistics are averaged (`average_buffers`): weights,
  logits, optimiser moments and statistics stay identical on every rank, and rank
  0's checkpoint is every rank's state (a run can resume on any number of ranks);
- BatchNorm normalises with each rank's own batch statistics (SyncBatchNorm rejects
  CPU tensors), so N ranks match one process only where no BatchNorm is involved;
- logged numbers are averaged over ranks (`mean`), decisions (stop, diverged) are
  taken together (`any_rank`), and `all_gather_check` fails loudly if ranks differ;
- only rank 0 (`is_main`) writes files and prints; what rank 0 computes or reads for
  everyone (a latency table) reaches the others through `from_main`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch
from torch import nn

from hwnas.contracts.errors import HwnasError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_dist = torch.distributed


class RanksDisagree(HwnasError):
    """Ranks of one data-parallel run hold different values where they must be identical."""


# -- the process group -----------------------------------------------------------------


def launched() -> bool:
    """Whether torchrun started this process as one of several ranks (WORLD_SIZE > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_distributed() -> bool:
    return _dist.is_available() and _dist.is_initialized() and _dist.get_world_size() > 1


def rank() -> int:
    return _dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return _dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, or a single process: the one that writes files and prints."""
    return rank() == 0


def init_from_env() -> bool:
    """Join torchrun's process group if launched as one of several ranks; True if this call did.

    Backend gloo for CPU tensors; with a visible GPU also NCCL for CUDA tensors, and
    this process's current CUDA device becomes LOCAL_RANK.
    """
    if not launched() or (_dist.is_available() and _dist.is_initialized()):
        return False
    if not _dist.is_available():
        raise HwnasError("this PyTorch build has no torch.distributed; run without torchrun or install a full PyTorch build.")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise HwnasError(f"WORLD_SIZE is set but {', '.join(missing)} is not; start data-parallel runs with torchrun.")
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"
    _dist.init_process_group(backend=backend)
    logger.debug("rank %d of %d joined the process group (%s)", rank(), world_size(), backend)
    return True


@contextlib.contextmanager
def session() -> Iterator[None]:
    """The process group for the duration of a command (a no-op without torchrun).

    Ranks other than 0 log warnings and errors only: rank 0 reports progress.
    """
    started = init_from_env()
    quieted = started and not is_main()
    previous = logging.root.level
    if quieted:
        logging.root.setLevel(max(previous, logging.WARNING))
    try:
        yield
        if started:
            # Every rank leaves together: a rank that tore its gloo connections down while its peer was still
            # writing the run's outputs aborted once at exit ("terminate called without an active exception").
            # Not on an error: a failed peer may never arrive, and torchrun stops the others anyway.
            _dist.barrier()
    finally:
        if quieted:
            logging.root.setLevel(previous)
        if started:
            _dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        _dist.barrier()


# -- data --------------------------------------------------------------------------------


def local_batch_size(batch_size: int) -> int:
    """This rank's share of the global batch; refuses a batch that does not split evenly."""
    n = world_size()
    if batch_size % n:
        raise HwnasError(f"--batch-size {batch_size} does not split over {n} ranks; pass a multiple of {n} (it is the global batch).")
    return batch_size // n


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (dimension 0); the whole batch in one process."""
    n = local_batch_size(batch.shape[0])
    return batch[rank() * n:(rank() + 1) * n] if is_distributed() else batch


# -- keeping ranks identical -------------------------------------------------------------------


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average `.grad` over ranks; a parameter without a gradient counts as zeros.

    A parameter gets a gradient if any rank has one (the others contribute zeros) and
    keeps `grad` None only if no rank has one, so every rank's optimiser sees the same
    gradients and skips the same parameters. Two collectives: the flags, then one flat
    buffer of the gradients that exist somewhere.
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    _dist.all_reduce(flags)
    live = [p for p, f in zip(params, flags.tolist()) if f > 0]
    if not live:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in live])
    _dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in live:
        n = p.numel()
        value = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = value.clone()
        else:
            p.grad.copy_(value)
        offset += n


def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running mean/var) over ranks."""
    if not is_distributed():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    _dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def mean(values: Sequence[float]) -> list[float]:
    """Each value averaged over ranks (for logged losses); the values themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    _dist.all_reduce(t)
    return (t / world_size()).tolist()


def maximum(value: float) -> float:
    """The largest value over ranks (e.g. a step's duration, so time budgets end together)."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    _dist.all_reduce(t, op=_dist.ReduceOp.MAX)
    return float(t)


def any_rank(flag: bool) -> bool:
    """True on every rank if it is true on any: decisions (stop, diverged) taken together."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0])
    _dist.all_reduce(t, op=_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def state_digest(module: nn.Module) -> torch.Tensor:
    """sha256 of every parameter and buffer, in state_dict order, as 32 int64 (for `all_gather_check`)."""
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return torch.tensor(list(h.digest()), dtype=torch.int64)


def all_gather_check(tensor: torch.Tensor, what: str) -> None:
    """Gather `tensor` from every rank and raise `RanksDisagree` on every rank unless all are identical.

    Compares exactly (bitwise), since data-parallel ranks apply the same averaged
    updates. Keep `tensor` small (logits, a `state_digest`): it travels to every rank.
    """
    if not is_distributed():
        return
    mine = tensor.detach().cpu()
    gathered: list[torch.Tensor | None] = [None] * world_size()
    _dist.all_gather_object(gathered, mine)
    reference = gathered[0]
    differ = [r for r, t in enumerate(gathered) if t.shape != reference.shape or not torch.equal(t, reference)]
    if differ:
        detail = ""
        other = gathered[differ[0]]
        if other.shape == reference.shape and reference.is_floating_point():
            detail = f" (max abs difference {float((other - reference).abs().max()):.3g})"
        raise RanksDisagree(
            f"ranks {differ} hold other {what} than rank 0{detail}; the data-parallel run is inconsistent -- "
            "check that every rank runs the same command, hwnas and torch versions, and sees the same --out folder."
        )


def from_main(produce: Callable[[], T]) -> T:
    """`produce()` run on rank 0 only, its result sent to every rank (pickled; keep it small).

    A `HwnasError` on rank 0 is raised on every rank, so a user's mistake ends all of
    them with the same message instead of leaving them waiting.
    """
    if not is_distributed():
        return produce()
    box: list[object] = [None]
    failure: BaseException | None = None
    if is_main():
        try:
            box[0] = ("ok", produce())
        except HwnasError as err:
            failure, box[0] = err, ("error", str(err))
        except BaseException as err:
            failure, box[0] = err, ("error", f"rank 0 failed ({err.__class__.__name__}: {err}); see its log.")
    _dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if failure is not None:
        raise failure
    if status == "error":
        raise HwnasError(value)
    return value
