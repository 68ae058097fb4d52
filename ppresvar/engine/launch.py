"""One process per core for CPU training (``Global.cpu_processes``).

On a CPU, paddle's element-wise kernels (batch norm, ReLU, additions) run
on one thread, so a process using every core leaves cores idle for much of
a step; data-parallel processes of one thread each keep them busy (ResNet-20
on this project's 2-core machine: see docs/benchmarks.md). So
``tools/train.py`` on a CPU re-launches itself under
``paddle.distributed.launch`` with one process per core, unless it already
runs under a launcher. The config's ``DataLoader.Train.batch_size`` stays the
*global* batch: each of the N processes takes ``batch_size / N`` (what
changes: batch-norm statistics are taken over each process's share, and
the augmentation draws are per process), the learning-rate schedule and the
iterations per epoch are those of one process.

Under a launcher the user starts (``python -m paddle.distributed.launch``),
``batch_size`` is per process, as before.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from .. import runtime
from ..errors import ConfigError

__all__ = ["processes_for", "split_batch", "relaunch", "SPLIT_ENV"]

SPLIT_ENV = "PPRESVAR_SPLIT_BATCH"  # set for the processes ppresvar launches itself
_NOISE = re.compile(r"^(LAUNCH (INFO|WARNING)|[IWE]\d{4} \d\d:\d\d|=+( Modified FLAGS detected =+)?$|"
                    r"FLAGS\(name=|\s*warnings\.warn\(|.*UserWarning: (No ccache|Your model will be trained))")


def processes_for(cfg, device):
    """How many processes ``tools/train.py`` should run: 1 on GPU, under a
    launcher, or where ``Global.cpu_processes`` or the batch says so."""
    g = cfg["Global"]
    want = g["cpu_processes"]
    if device != "cpu" or os.environ.get("PADDLE_TRAINERS_NUM"):
        return 1
    auto = want is None
    n = runtime.available_cores() if auto else int(want)
    if g["cpu_threads"] and auto:
        return 1  # the user chose threads for one process
    batch = cfg["DataLoader"]["Train"]["batch_size"] if cfg["DataLoader"].get("Train") else 0
    if n > 1 and (batch < n or batch % n):
        if not auto:
            raise ConfigError("Global.cpu_processes=%d does not divide DataLoader.Train.batch_size=%d: "
                              "choose a divisor, or cpu_processes: 1" % (n, batch))
        return 1
    return max(1, n)


def split_batch(cfg, world):
    """The per-process ``DataLoader.Train`` section of a self-launched run."""
    section = dict(cfg["DataLoader"]["Train"])
    if os.environ.get(SPLIT_ENV) and world > 1:
        section["batch_size"] = section["batch_size"] // world
    return section


def relaunch(n, script, argv):
    """Run ``script argv`` as ``n`` data-parallel processes; print what rank
    0 prints (without the launcher's own lines) and return the exit code."""
    log_dir = tempfile.mkdtemp(prefix="ppresvar-launch-")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(n), "--log_dir", log_dir,
           script] + list(argv)
    env = dict(os.environ, **{SPLIT_ENV: "1"})
    print("ppresvar: training as %d data-parallel processes, one per core (Global.cpu_processes; "
          "-o Global.cpu_processes=1 for one)" % n, flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, bufsize=1)
    errors = set()  # the launcher repeats a failed rank's last lines: print each error once
    try:
        for line in proc.stdout:
            if _NOISE.match(line) or line in errors:
                continue
            stream = sys.stdout
            if line.startswith("error:"):
                errors.add(line)
                stream = sys.stderr
            stream.write(line)
            stream.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    if code == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
    elif not errors:
        sys.stderr.write("error: a training process failed (exit code %d); its logs are in %s\n" % (code, log_dir))
    return code
