"""Cross-worker gathering for batch-contrastive losses (workload-agnostic).

Why: a contrastive loss (NT-Xent, sigmoid, triplet with in-batch negatives) compares every item
with every other item of the batch. With N data-parallel workers of local batch b, each worker
alone would see only b - 1 negatives per item, so the loss (and what it optimises) would change
with the number of workers. Gathering the embeddings of all workers lets every worker compute the
loss on the global batch of N*b items, the same batch a single worker with batch N*b would see.

Gradient bookkeeping (checked by ``tests/test_tar_losses.py`` on 2 gloo processes):

* Every worker computes the *same* global loss ``L`` on the gathered batch.
* :func:`gather_with_grad` uses ``torch.distributed.nn.functional.all_gather``, whose backward
  sums the incoming gradients of all workers (a reduce-scatter): worker r's local slice ``x_r``
  receives ``sum_w dL/dx_r = N * dL/dx_r``, because all N workers hold the same ``L``.
* DDP then *averages* parameter gradients over the N workers, so an encoder parameter ends with
  ``(1/N) * sum_r N * dL/dx_r * dx_r/dtheta = dL/dtheta``, exactly the single-worker gradient.
  Parameters used directly by the loss (a learnable temperature/bias, an attention-pooling head
  applied to the gathered batch) get ``dL/dtheta`` on every worker, and the average keeps it.
  So every parameter's gradient equals the single-worker one; the *input* gradient a worker sees
  for its slice is N times the single-worker one (DDP's 1/N undoes that).
* open_clip's other convention (``gather_with_grad=False, local_loss=False``: gather without
  gradient, then put the local tensor back in its slot) lets gradient flow only through the local
  copy: after DDP averaging, encoder gradients are ``(1/N) dL/dtheta`` while loss parameters still
  get ``dL/dtheta`` -- the two groups drift apart by a factor N. That is why this module uses the
  summing all_gather, as open_clip's ``gather_with_grad=True`` and Lightning's
  ``all_gather(sync_grads=True)`` (used by the salsa reference code) do.

Workers may hold different local batch sizes (a last partial batch): sizes are exchanged first
and slices padded to the largest for the collective, then trimmed; trailing dimensions must match.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _world() -> int:
    """World size, or 1 when torch.distributed is unavailable or not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def _sizes(n: int, device: torch.device, world: int) -> list[int]:
    """Every worker's local batch size (a tiny collective; the same on every worker)."""
    local = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(out, local)
    return [int(s.item()) for s in out]


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Zero-pad ``x`` along dim 0 to ``rows`` (differentiable; the pad gets no gradient)."""
    missing = rows - x.shape[0]
    if missing == 0:
        return x
    pad = [0, 0] * (x.dim() - 1) + [0, missing]
    return F.pad(x, pad)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` ``[b, ...]`` over the world, in rank order, keeping gradients.

    Returns ``[sum_r b_r, ...]``; identity when torch.distributed is not initialised or the world
    has one worker. The backward sums all workers' gradients into the local slice (see module
    docstring for why that gives exact single-worker parameter gradients under DDP averaging).
    """
    world = _world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    sizes = _sizes(x.shape[0], x.device, world)
    parts = all_gather(_pad_rows(x.contiguous(), max(sizes)))
    return torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` ``[b, ...]`` (ids, labels, masks; any dtype incl. bool) without autograd.

    Same ordering and identity rule as :func:`gather_with_grad`.
    """
    world = _world()
    if world == 1:
        return x
    is_bool = x.dtype == torch.bool
    y = x.to(torch.uint8) if is_bool else x  # not every backend all-gathers bool
    sizes = _sizes(y.shape[0], y.device, world)
    y = _pad_rows(y.contiguous(), max(sizes))
    parts = [torch.empty_like(y) for _ in range(world)]
    dist.all_gather(parts, y)
    out = torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0)
    return out.bool() if is_bool else out


def gather_sequences_with_grad(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather padded sequences ``x`` ``[b, T, ...]`` and their mask ``[b, T]`` (True = real).

    Workers' padded lengths T differ (each pads its own batch), so every worker first pads to the
    world's longest T (padding is masked out), then gathers ``x`` with gradients and the mask
    without. Identity without a process group.
    """
    world = _world()
    if world == 1:
        return x, mask
    longest = torch.tensor([x.shape[1]], dtype=torch.long, device=x.device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    missing = int(longest.item()) - x.shape[1]
    if missing:
        x = F.pad(x, [0, 0] * (x.dim() - 2) + [0, missing])
        mask = F.pad(mask, (0, missing), value=False)
    return gather_with_grad(x), gather_no_grad(mask)


def broadcast_decision(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every worker (a decision only rank 0 can take, such as early stopping
    on the validation it alone ran: a worker that trained on alone would wait forever in DDP's
    next all-reduce)."""
    if _world() == 1:
        return flag
    t = torch.tensor([int(flag)], dtype=torch.long, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def gather_objects(obj: Any) -> list[Any] | None:
    """Every worker's ``obj`` (small, picklable), in rank order, on every worker; None without a
    process group (one worker)."""
    if _world() == 1:
        return None
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
