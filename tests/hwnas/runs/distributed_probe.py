"""Run by test_distributed.py under torchrun: every `hwnas.runs.distributed` helper on 2 ranks.

Each rank writes what it saw to <out>/rank<r>.json (a test harness, not hwnas output).
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

from hwnas.runs import distributed
from hwnas.contracts.errors import HwnasError


def caught(fn) -> str | None:
    try:
        fn()
    except HwnasError as err:
        return f"{type(err).__name__}: {err}"
    return None


def probe() -> dict:
    r = distributed.rank()
    seen: dict = {"rank": r, "world": distributed.world_size(), "main": distributed.is_main()}

    # gradients: on both ranks / only on rank 1 / on none
    both, one, none = (nn.Parameter(torch.zeros(3)) for _ in range(3))
    both.grad = torch.full((3,), float(r + 1))
    if r == 1:
        one.grad = torch.full((3,), 2.0)
    distributed.average_gradients([both, one, none])
    seen["grads"] = [None if p.grad is None else p.grad.tolist() for p in (both, one, none)]

    bn = nn.BatchNorm2d(2)
    bn.running_mean.fill_(float(r))
    distributed.average_buffers(bn)
    seen["running_mean"] = bn.running_mean.tolist()

    seen["shard"] = distributed.shard(torch.arange(6)).tolist()
    seen["odd_batch"] = caught(lambda: distributed.local_batch_size(3))
    seen["mean"] = distributed.mean([float(r), 10.0])
    seen["maximum"] = distributed.maximum(float(r))
    seen["any"] = [distributed.any_rank(r == 1), distributed.any_rank(False)]

    seen["same"] = caught(lambda: distributed.all_gather_check(torch.tensor([1.0, 2.0]), "logits"))
    seen["differ"] = caught(lambda: distributed.all_gather_check(torch.tensor([1.0, 2.0 + r]), "logits"))
    seen["digest_differ"] = caught(lambda: distributed.all_gather_check(distributed.state_digest(nn.Linear(2, 2)), "weights"))

    seen["from_main"] = distributed.from_main(lambda: f"made by rank {distributed.rank()}")

    def fails():
        raise HwnasError("the table is for another device; pass --force.")

    seen["from_main_error"] = caught(lambda: distributed.from_main(fails))
    return seen


if __name__ == "__main__":
    out = Path(sys.argv[1])
    with distributed.session():
        torch.manual_seed(1000 + distributed.rank())  # nn.Linear above: different weights per rank on purpose
        result = probe()
        (out / f"rank{distributed.rank()}.json").write_text(json.dumps(result))
