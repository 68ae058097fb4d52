"""Data parallel helpers for ``python -m paddle.distributed.launch``.

In one process every function here is a no-op; under the launcher each rank
trains on its shard (see ``data.loader.ShardedBatchSampler``), gradients are
averaged by ``paddle.DataParallel`` and metric sums by :func:`all_reduce_sum`;
only rank 0 writes files.
"""
import os

import paddle

__all__ = ["world_size", "rank", "is_main", "init", "all_reduce_sum", "gather_floats", "average_buffers", "barrier"]


def world_size():
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def rank():
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main():
    return rank() == 0


_INITIALISED = [False]


def init():
    """Start the parallel environment when launched with several processes."""
    if world_size() > 1 and not _INITIALISED[0]:
        paddle.distributed.init_parallel_env()
        _INITIALISED[0] = True
    return rank(), world_size()


def all_reduce_sum(values):
    """Sum a list of floats over ranks (float64)."""
    if world_size() <= 1:
        return list(values)
    t = paddle.to_tensor(list(values), dtype="float64")
    paddle.distributed.all_reduce(t)
    return [float(v) for v in t.numpy()]


def gather_floats(value):
    """Every rank's ``value``, as a list indexed by rank (on every rank)."""
    if world_size() <= 1:
        return [float(value)]
    values = [0.0] * world_size()
    values[rank()] = float(value)
    return all_reduce_sum(values)


def average_buffers(model, extra_states=()):
    """Average the floating-point buffers (BN running statistics) of ``model``
    over ranks, and the same entries of each state dict in ``extra_states``
    (the EMA's): ranks see different data, so without this each would
    validate with its own statistics and the checkpoint (rank 0's) would hold
    other statistics than the ones validated."""
    if world_size() <= 1:
        return
    # paddle keeps BN statistics as parameters that take no gradient
    names = [k for k, v in model.state_dict().items() if v.stop_gradient and paddle.is_floating_point(v)]
    states = [model.state_dict()] + [s for s in extra_states if s]
    for state in states:
        for name in names:
            t = state[name]
            total = t.detach().clone()
            paddle.distributed.all_reduce(total)
            t.set_value(total / float(world_size()))


def barrier():
    if world_size() > 1:
        paddle.distributed.barrier()
