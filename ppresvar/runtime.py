"""CPU settings a user would not know to set, applied explicitly by the
command-line tools (``tools/*.py``, first thing, before paddle loads) and by
the trainer and evaluator on a CPU (``ppresvar.engine.device``); never on
``import ppresvar``. Every value is a default that an exported variable
overrides. This module imports only the standard library, so a tool can
import it before paddle.
"""
import os
import sys

# paddle's bundled MKL takes a slow path on AMD unless told the CPU type
# (a 4096 GEMM: 93 -> 241 GFLOP/s here); results are unchanged.
# KMP_BLOCKTIME=1 lets OpenMP threads sleep soon after a parallel region
# (ResNet-56: 59 -> 93 img/s here; 0 was worse).
# GOMP_SPINCOUNT does the same for GNU OpenMP, which ppresvar's kernels and
# paddle's oneDNN run on: its threads otherwise spin for ~300k iterations
# after each region, taking the cores paddle's next op needs (ResNet-20, one
# process, 2 threads, batch 128: 277 -> 709 img/s here; 0: 631, 30000: 582).
ENV_DEFAULTS = {"MKL_DEBUG_CPU_TYPE": "5", "KMP_BLOCKTIME": "1", "GOMP_SPINCOUNT": "3000"}


def apply_cpu_settings():
    """Set ENV_DEFAULTS where the environment does not (read by MKL and
    OpenMP when they start: call it before paddle loads) and tune glibc's
    malloc (:func:`tune_malloc`). Returns the variables it set."""
    set_here = {}
    for key, value in ENV_DEFAULTS.items():
        if key not in os.environ:
            os.environ[key] = set_here[key] = value
    tune_malloc()
    return set_here


# glibc's malloc serves blocks from 128 KB up (raised on the fly to at most
# 32 MB) with mmap, and returns freed heap to the system past a trim
# threshold: paddle allocates every activation and gradient of a CPU step
# anew, so each step page-faulted tens of megabytes back in (ResNet-20, one
# thread, batch 64: 190 -> 101 ms a step here, identical results). Keep them
# on the heap: no mmap at all (the threshold cannot go past 32 MB, and a
# ResNet-18 activation at batch 128 is 32 MB: relu(a + b) forward on two of
# them took 14 ms mmapped, 2.6 ms from the heap, 2 threads), trim only past
# 1 GB of free heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
MALLOC_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30))


def tune_malloc():
    """Apply MALLOC_SETTINGS with glibc's ``mallopt`` (Linux; not when
    ``PPRESVAR_NO_MALLOPT`` is set or the user set MALLOC_* variables).
    Returns True when applied."""
    if os.environ.get("PPRESVAR_NO_MALLOPT") or not sys.platform.startswith("linux"):
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(option, value) == 1 for option, value in MALLOC_SETTINGS)
    except (OSError, AttributeError):  # not glibc
        return False


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_cpu_threads(threads=None):
    """Use ``threads`` intra-op threads (default: every core this process may
    run on). ``import paddle`` pins eager execution to one thread when
    OMP_NUM_THREADS is unset. Returns the number set."""
    import paddle

    n = int(threads or available_cores())
    setter = getattr(getattr(paddle, "base", None), "core", None)
    if setter is None:  # paddle 2.x before paddle.base existed
        setter = paddle.fluid.core
    setter.set_num_threads(n)
    _set_gomp_threads(n)
    return n


def _set_gomp_threads(n):
    """paddle's setter reaches its MKL/iomp threads but not GNU OpenMP's,
    which oneDNN (``paddle/libs/libdnnl.so.3``, the ``ppresvar.kernels``
    convolutions) runs on; GNU OpenMP read OMP_NUM_THREADS when it loaded,
    before ``import paddle`` set it to 1, so without this each of two
    one-thread data-parallel processes ran oneDNN on every core."""
    import ctypes

    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(int(n))
    except (OSError, AttributeError):  # no GNU OpenMP here: nothing uses it
        pass


def gomp_threads():
    """GNU OpenMP's thread count for this thread (None where it is absent)."""
    import ctypes

    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except (OSError, AttributeError):
        return None
