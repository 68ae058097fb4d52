"""Data-parallel CPU training on one machine (``Global.cpu_processes``).

By default ``tools/train.py`` trains on a CPU as one process using every
core: ppresvar's multi-threaded kernels (convolutions, batch norm with its
ReLU and residual addition, the option-A shortcut, DyReLU, NAM's gate; see
docs/cpu_kernels.md) keep the cores busy, and batch norm sees the config's
whole batch on any machine, so the recipe does not change with the core
count. ``Global.cpu_processes: N`` (N > 1) asks for N data-parallel
processes instead: ``tools/train.py`` re-launches itself under
``paddle.distributed.launch`` and the config's ``DataLoader.Train.batch_size``
stays the *global* batch: each process takes ``batch_size / N`` (what
changes: batch-norm statistics are taken over each process's share, and the
augmentation draws are per process), the learning-rate schedule and the
iterations per epoch are those of one process. A share below
``BN_SAFE_IMAGES`` images runs as asked, with one line saying so.

Under a launcher the user starts (``python -m paddle.distributed.launch``),
``batch_size`` is per process, as before.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from ..errors import ConfigError

__all__ = ["BN_SAFE_IMAGES", "processes_for", "split_batch", "relaunch", "record_failure", "failure_report", "SPLIT_ENV",
           "FAILURE_ENV"]

SPLIT_ENV = "PPRESVAR_SPLIT_BATCH"  # set for the processes ppresvar launches itself
FAILURE_ENV = "PPRESVAR_FAILURE_DIR"  # where those processes record a failure (record_failure)
_BROKEN = re.compile(r"gloo|Connection reset|Connection closed|Broken pipe|TIMEOUT|Timed out|pair\.cc", re.I)
_FAILED = re.compile(r"Container rank (\d+) status failed .* code (-?\d+)")
_NOISE = re.compile(r"^(LAUNCH (INFO|WARNING|ERROR)|[IWE]\d{4} \d\d:\d\d|=+( Modified FLAGS detected =+)?$|"
                    r"FLAGS\(name=|\s*warnings\.warn\(|.*UserWarning: (No ccache|Your model will be trained))")


# Batch norm over fewer images than this per process is noisier than the
# recipe meant (docs/training.md, "Data parallel"): an explicit
# Global.cpu_processes that splits the batch below it is said in one line.
BN_SAFE_IMAGES = 32


def processes_for(cfg, device, say=None):
    """How many processes ``tools/train.py`` should run: ``Global.cpu_processes``
    on a CPU (null, the default, is one process using every core), and 1 on
    GPU or under a launcher. A count that does not divide the batch is
    refused; one that leaves a process fewer than ``BN_SAFE_IMAGES`` images
    runs, with one ``say`` line."""
    g = cfg["Global"]
    if device != "cpu" or os.environ.get("PADDLE_TRAINERS_NUM") or not g["cpu_processes"]:
        return 1
    n = int(g["cpu_processes"])
    batch = cfg["DataLoader"]["Train"]["batch_size"] if cfg["DataLoader"].get("Train") else 0
    if n > 1 and (batch < n or batch % n):
        raise ConfigError("Global.cpu_processes=%d does not divide DataLoader.Train.batch_size=%d: "
                          "choose a divisor, or cpu_processes: 1" % (n, batch))
    if n > 1 and batch // n < BN_SAFE_IMAGES and say is not None:
        say("ppresvar: Global.cpu_processes=%d gives each process %d images of the batch of %d: batch norm over "
            "fewer than %d images is noisier than the recipe meant (docs/training.md, Data parallel)"
            % (n, batch // n, batch, BN_SAFE_IMAGES))
    return max(1, n)


def split_batch(cfg, world):
    """The per-process ``DataLoader.Train`` section of a self-launched run."""
    section = dict(cfg["DataLoader"]["Train"])
    if os.environ.get(SPLIT_ENV) and world > 1:
        section["batch_size"] = section["batch_size"] // world
    return section


def record_failure(exc, message, user):
    """In a rank started by :func:`relaunch`: leave ``failure.<rank>.json``
    (time, where, message) for the launching process to report."""
    folder = os.environ.get(FAILURE_ENV)
    if not folder:
        return
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0"))
    info = {"rank": rank, "time": time.time(), "where": getattr(exc, "ppresvar_where", None),
            "message": message, "user": user}
    try:
        with open(os.path.join(folder, "failure.%d.json" % rank), "w") as f:
            json.dump(info, f)
    except OSError:
        pass


def _failures(log_dir):
    out = []
    for name in os.listdir(log_dir):
        if name.startswith("failure.") and name.endswith(".json"):
            try:
                with open(os.path.join(log_dir, name)) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                pass
    return sorted(out, key=lambda f: f["time"])


def failure_report(n, log_dir, failures, killed, errors):
    """The one line that says why an ``n``-process run stopped. A rank that
    fails says so (``failure.<rank>.json``); a rank killed by a signal says
    nothing, and the others then fail in their next all-reduce. So: a silent
    rank while the others only report a broken connection is the cause;
    otherwise the first rank that failed, by time. ``killed``: the
    launcher's ``(rank, exit code)`` sightings."""
    log = lambda r: os.path.join(log_dir, "workerlog.%d" % r)  # noqa: E731
    said = set(f["rank"] for f in failures)
    silent = [r for r in range(n) if r not in said]
    if silent and all(_BROKEN.search(f["message"]) for f in failures):
        signals = dict((r, -c) for r, c in killed if c < 0 and c != -15)
        late = [r for r in silent if r not in signals and _stopped_by_launcher(log(r))]
        if failures and late and len(late) == len(silent):
            f = failures[0]
            return ("rank %d of %d fell more than 30 s behind rank %d%s, gloo's limit on an all-reduce, and the "
                    "run stopped (a busy machine, or data loader workers that cannot keep up: fewer workers "
                    "or Global.cpu_processes=1 avoid it); the last checkpoint written is kept: continue with "
                    "--resume; logs in %s" % (late[0], n, f["rank"], " at " + f["where"] if f.get("where") else "",
                                              log_dir))
        rank = next((r for r in silent if r in signals), silent[0])
        if rank in signals:
            how = "was killed by signal %d%s" % (signals[rank], " (often the system running out of memory)"
                                                 if signals[rank] == 9 else "")
        else:
            how = "was killed (it stopped without a word; often the system running out of memory)"
        return ("rank %d of %d %s; the other ranks were stopped; the last checkpoint written is kept: "
                "continue with --resume; logs in %s" % (rank, n, how, log_dir))
    if failures:
        f = failures[0]
        where = f.get("where")
        if f["user"]:
            named = "on rank " in f["message"]
            return "%s%s" % (f["message"], "" if named else " (rank %d of %d%s)" % (
                f["rank"], n, ", " + where if where else ""))
        return "rank %d of %d failed%s with %s; the other ranks were stopped; its traceback is in %s" % (
            f["rank"], n, " at " + where if where else "", f["message"], log(f["rank"]))
    if errors:
        return errors[0][len("error: "):].rstrip("\n")
    return None


def _stopped_by_launcher(path):
    """Whether a rank's log ends with paddle's report of the SIGTERM the
    launcher sends to the ranks still running: that rank was alive (late),
    not killed."""
    try:
        with open(path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 20000))
            return "Termination signal" in f.read()
    except OSError:
        return False


def relaunch(n, script, argv):
    """Run ``script argv`` as ``n`` data-parallel processes; print what rank
    0 prints (without the launcher's own lines) and return the exit code.
    When a rank fails, the launcher stops the others (a rank killed or
    failing breaks the others' next all-reduce); this prints one line saying
    which rank failed, where and why (tests/tools/test_launch.py)."""
    log_dir = tempfile.mkdtemp(prefix="ppresvar-launch-")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(n), "--log_dir", log_dir,
           script] + list(argv)
    env = dict(os.environ, **{SPLIT_ENV: "1", FAILURE_ENV: log_dir})
    print("ppresvar: training as %d data-parallel processes (Global.cpu_processes=%d; "
          "null or 1 for one process using every core)" % (n, n), flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, bufsize=1)
    errors, killed = [], []
    quiet = False  # inside a traceback, or after the launcher saw a rank fail: kept in the logs
    try:
        for line in proc.stdout:
            m = _FAILED.search(line)
            if m:
                killed.append((int(m.group(1)), int(m.group(2))))
                quiet = True
            if line.startswith("error:"):
                errors.append(line)
                continue
            if line.startswith("Traceback (most recent call last)"):
                quiet = True
            if quiet or _NOISE.match(line):
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    if code == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
        return 0
    failures = _failures(log_dir)
    report = failure_report(n, log_dir, failures, killed, errors)
    sys.stderr.write("error: %s\n" % (report or "a training process failed (exit code %d); its logs are in %s"
                                      % (code, log_dir)))
    if report and failures and failures[0]["message"] in report:
        return 2 if failures[0]["user"] else 1  # 2: bad input, as in one process
    return 2 if (errors and not failures and not killed) else 1
