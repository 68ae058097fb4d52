"""Resident memory stays flat across epochs: tools/train.py trains 5 short
epochs on generated data; its RSS (read from /proc when each epoch's line is
printed) grows by less than 5% from the end of epoch 2 to the end of epoch 5.
With loader workers, the workers of an epoch end with its training loop: none
is alive when the epoch's line is printed (each epoch leaked its workers
before, 4 per rank per epoch, until a 15-epoch run held 23 GiB)."""
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT, cifar_args, descendants
from ppresvar.data import write_cifar_archive


def _rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("workers", [0, 2])
def test_resident_memory_is_flat_across_epochs(tmp_path, workers):
    archive = write_cifar_archive(str(tmp_path / "cifar-10-python.tar.gz"), num_train=1056, num_test=40, seed=3)
    args = cifar_args(archive, str(tmp_path / "out"), "mem", epochs=5, val=96)
    args += ["-o", "DataLoader.Train.num_workers=%d" % workers]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py")] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    rss, alive = {}, {}
    for line in proc.stdout:
        if line.startswith("epoch ") and "train_loss" in line:
            epoch = int(line.split()[1].split("/")[0])
            rss[epoch], alive[epoch] = _rss_mb(proc.pid), descendants(proc.pid)
    assert proc.wait() == 0
    assert sorted(rss) == [1, 2, 3, 4, 5]
    growth = rss[5] / rss[2] - 1
    print("workers %d: RSS per epoch (MB): %s; growth after epoch 2: %.2f%%; processes below train.py: %s"
          % (workers, ", ".join("%.0f" % rss[e] for e in sorted(rss)), 100 * growth,
             [len(alive[e]) for e in sorted(alive)]))
    assert growth < 0.05, rss
    assert all(not pids for pids in alive.values()), alive
