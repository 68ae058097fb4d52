"""Data parallel helpers for ``python -m paddle.distributed.launch``.

In one process every function here is a no-op; under the launcher each rank
trains on its shard (see ``data.loader.ShardedBatchSampler``), gradients are
averaged by ``paddle.DataParallel`` and metric sums by :func:`all_reduce_sum`;
only rank 0 writes files.

Gloo, paddle's CPU collective backend, gives up on an all-reduce after 30
seconds (its default; paddle offers no way to change it): a rank that lags
more than that behind the others ends the run, although nothing is wrong.
Ranks drift apart where each does work of its own (loader workers starting
at an epoch's first batch, validation, rank 0 writing checkpoints), so those
places first wait in :func:`wait_for_ranks`, which has no such limit; the
per-step exchanges (:func:`gather_floats`, the gradient all-reduce) then
find the ranks in step. Found as three "stalls" of 2-process runs with
loader workers on a busy machine (docs/faults.md).
"""
import os

import paddle

__all__ = ["world_size", "rank", "is_main", "init", "all_reduce_sum", "gather_floats", "average_buffers", "barrier",
           "wait_for_ranks", "WAIT_LIMIT_S"]


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


WAIT_LIMIT_S = 900  # the launcher's TCP store's own limit on a wait
_WAITS = [0]


def wait_for_ranks(what):
    """Return when every rank has reached this call (the n-th call of each
    rank meets the n-th of the others), however late some are, up to
    ``WAIT_LIMIT_S``; ``what`` names the place for the error message. Goes
    through the TCP store the launcher set up (a key per rank and call)."""
    if world_size() <= 1:
        return
    from paddle.base import core

    from ..errors import TrainingError

    _WAITS[0] += 1
    store = core.create_or_get_global_tcp_store()
    key = "ppresvar/wait/%d/%%d" % _WAITS[0]
    store.set(key % rank(), "1")
    for r in range(world_size()):
        if r == rank():
            continue
        try:
            store.wait(key % r)
        except Exception as e:  # the store's limit
            raise TrainingError("rank %d of %d waited %d s for rank %d at %s and stopped (%s); the last "
                                "checkpoint written is kept: continue with --resume"
                                % (rank(), world_size(), WAIT_LIMIT_S, r, what, str(e).strip().splitlines()[-1]))


def all_reduce_sum(values, what="the metric sums"):
    """Sum a list of floats over ranks (float64), once every rank is there
    (:func:`wait_for_ranks`)."""
    if world_size() <= 1:
        return list(values)
    wait_for_ranks(what)
    return _all_reduce(values)


def _all_reduce(values):
    t = paddle.to_tensor(list(values), dtype="float64")
    paddle.distributed.all_reduce(t)
    return [float(v) for v in t.numpy()]


def gather_floats(value):
    """Every rank's ``value``, as a list indexed by rank (on every rank)."""
    if world_size() <= 1:
        return [float(value)]
    values = [0.0] * world_size()
    values[rank()] = float(value)
    return _all_reduce(values)  # per step: the ranks are in step (see the module's text)


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


def barrier(what="the end of an epoch"):
    wait_for_ranks(what)
