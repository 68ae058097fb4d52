"""Samplers and data loaders.

:class:`ShardedBatchSampler` shuffles with a seed derived from ``(seed,
epoch)``, so an epoch's order is known before it starts (an exact resume at
an epoch boundary needs no sampler state), and gives each data-parallel rank
its own shard (training pads so every rank runs the same number of steps;
evaluation does not pad, so no image is counted twice). On the batched path
(:mod:`ppresvar.data.batched`) :class:`WholeBatchSampler` hands each batch
over as one item with the seed of its random draws.
"""
import gc
import hashlib
import math
import os
import shutil
import threading

import numpy as np
import paddle

from ..errors import UserError
from .batched import BatchedDataset, batched_pipeline, collate_batch
from .datasets import build_dataset
from .transforms import build_transforms

__all__ = ["derive_seed", "ShardedBatchSampler", "WholeBatchSampler", "build_loader", "shared_memory_ok",
           "LoaderErrors", "InProcessLoader"]


def derive_seed(*parts):
    """A 31-bit seed from any parts (stable across processes and runs)."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


class ShardedBatchSampler(paddle.io.BatchSampler):
    def __init__(self, num_samples, batch_size, shuffle=False, drop_last=False, seed=0, rank=0,
                 world_size=1, pad=True):
        # BatchSampler.__init__ wants a dataset or sampler; this one needs neither.
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def indices(self):
        n = self.num_samples
        if self.shuffle:
            order = np.random.RandomState(derive_seed(self.seed, "order", self.epoch)).permutation(n)
        else:
            order = np.arange(n)
        if self.world_size > 1:
            if self.pad:
                total = int(math.ceil(n / float(self.world_size))) * self.world_size
                order = np.concatenate([order, order[:total - n]])
            order = order[self.rank::self.world_size]
        return order

    def __iter__(self):
        order = self.indices()
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield [int(i) for i in batch]

    def __len__(self):
        n = len(self.indices()) if self.world_size > 1 else self.num_samples
        if self.drop_last:
            return n // self.batch_size
        return int(math.ceil(n / float(self.batch_size)))


class WholeBatchSampler(ShardedBatchSampler):
    """The same batches, each yielded as one item ``[(seed, indices)]`` for a
    :class:`~ppresvar.data.batched.BatchedDataset`: the seed of its random
    draws comes from ``(seed, epoch, rank, batch number)``, so it does not
    depend on which worker makes the batch."""

    def __iter__(self):
        for number, batch in enumerate(super(WholeBatchSampler, self).__iter__()):
            yield [(derive_seed(self.seed, "augment", self.epoch, self.rank, number), np.asarray(batch))]


def shared_memory_ok(min_free=2 << 30):
    """False where /dev/shm is missing or small (AI Studio): then the workers
    pass batches through pipes rather than crash with a bus error."""
    try:
        return shutil.disk_usage("/dev/shm").free >= min_free
    except OSError:
        return os.name == "nt"


def build_loader(section, where, seed=0, rank=0, world_size=1, training=False, cache=None):
    """``(loader, sampler, dataset)`` for a validated ``DataLoader.<split>``
    section; the loader yields ``(images, labels)`` tensors, made per image or
    (``batched``) a whole batch at a time."""
    transform = build_transforms(section["transforms"], "%s.transforms" % where)
    batch_pipeline = batched_pipeline(section, where, transform)
    dataset = build_dataset(section["dataset"], None if batch_pipeline else transform, where, cache)
    collate = None
    sampler_cls = ShardedBatchSampler
    if batch_pipeline is not None:
        dataset = BatchedDataset(dataset, batch_pipeline, where)
        sampler_cls, collate = WholeBatchSampler, collate_batch
    sampler = sampler_cls(len(dataset), section["batch_size"], shuffle=section["shuffle"] and training,
                          drop_last=section["drop_last"] and training, seed=seed, rank=rank,
                          world_size=world_size, pad=training)
    workers = section["num_workers"]
    shm = section["use_shared_memory"]
    if shm is None:
        shm = workers > 0 and shared_memory_ok()
    if workers == 0:
        return InProcessLoader(dataset, sampler, collate), sampler, dataset
    loader = paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                                  use_shared_memory=bool(shm), return_list=True)
    return LoaderErrors(loader), sampler, dataset


class InProcessLoader(object):
    """``num_workers: 0``: each batch made in this thread when it is asked
    for, as ``[images, labels]`` tensors. Paddle's own loader reads in a
    background thread even without workers, and when that thread fails (an
    unreadable image) the main process waits forever (paddle 2.6 and 3.3);
    here a data error is raised where the batch is asked for."""

    def __init__(self, dataset, batch_sampler, collate_fn=None):
        from paddle.io.dataloader.collate import default_collate_fn

        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.collate_fn = collate_fn or default_collate_fn

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        for indices in self.batch_sampler:
            batch = self.collate_fn([self.dataset[i] for i in indices])
            yield [x if isinstance(x, paddle.Tensor) else paddle.to_tensor(x) for x in batch]


class LoaderErrors(object):
    """A paddle DataLoader whose data errors read as they would in a plain
    loop. Paddle reads batches in a thread (and in worker processes with
    ``num_workers > 0``): an exception there is re-raised in that thread,
    where nobody catches it; with workers the main process then stops on
    "SystemError: Blocking queue is killed", and without workers it waits
    forever (paddle 2.6 and 3.3). This keeps the thread's exception, wakes
    the main process and raises it there: a user error (an unreadable image...)
    as its one-line message, anything else with the original traceback."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __iter__(self):
        caught, previous = [], threading.excepthook
        lock, state = threading.Lock(), {"it": None, "pending": []}

        def handle(args, it):
            if args.thread is getattr(it, "_thread", None) or "DataLoader worker" in str(args.exc_value):
                caught.append(args.exc_value)
                wake = getattr(it, "_exit_thread_unexpectedly", None)
                if wake is not None:
                    wake()  # kills the queue the main process waits on
            else:
                previous(args)

        def hook(args):
            with lock:
                it = state["it"]
                if it is None:  # the reader failed before iter() returned: decide below
                    state["pending"].append(args)
                    return
            handle(args, it)

        threading.excepthook = hook  # before iter(): the reader thread starts there
        try:
            it = iter(self.loader)
            with lock:
                state["it"], pending = it, state["pending"]
            for args in pending:
                handle(args, it)
            for batch in it:
                yield batch
        except Exception:
            if caught:
                raise _reader_error(caught[0])
            raise
        finally:
            threading.excepthook = previous
            _shut_down(state["it"])
        if caught:  # the reader stopped early without the main process noticing
            raise _reader_error(caught[0])


def _shut_down(it, timeout=10.0):
    """Stop a paddle loader iterator's worker processes and reader thread.
    Paddle does it only when the iterator runs out (StopIteration): a loop
    that stops after its last batch without asking for one more (the trainer
    takes exactly ``steps`` batches), or that breaks early, leaves them
    running, and the reader thread keeps the iterator (and its __del__) alive,
    so every epoch leaked its workers (15 epochs x 4 workers x 2 ranks held
    23 GiB here). The workers get ``timeout`` seconds to exit, then are
    terminated (paddle's own shutdown would wait forever for a stuck one).
    Idempotent (paddle keeps a flag)."""
    shutdown = getattr(it, "_try_shutdown_all", None)
    if shutdown is None:
        return
    workers = list(getattr(it, "_workers", None) or ())
    if workers:
        shutdown(timeout)
    else:
        shutdown()
    for w in workers:
        if w.is_alive():
            w.terminate()
            w.join(timeout)
    reader = getattr(it, "_reader", None)
    if reader is not None:
        reader.shutdown()
    # the iterator sits in reference cycles: collect it here, or the next
    # epoch's forked workers inherit it and hang destroying its queue
    gc.collect()


def _reader_error(exc):
    text = str(exc)
    worker = "DataLoader worker" in text
    if isinstance(exc, UserError):
        # paddle re-raises a worker's error with the worker's traceback in the
        # message: keep what follows its last "module.Type: "
        prefix = "%s.%s: " % (type(exc).__module__, type(exc).__name__)
        message = text[text.rindex(prefix) + len(prefix):] if prefix in text else text
        return type(exc)(message + (" (in a DataLoader worker)" if worker else ""))
    if worker:
        return RuntimeError("a DataLoader worker failed:\n%s" % text)
    return exc
