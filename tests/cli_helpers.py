"""Helpers of the command-line tests: run tools in process or as subprocesses."""
import importlib.util
import os
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore", message="When training, we now always track")


def _script(name):
    """tools/<name>.py, or the script ``name`` names (``reproduction/reproduce``)."""
    return os.path.join(ROOT, *(name.split("/") if "/" in name else ["tools", name])) + ".py"


def tool(name):
    """tools/<name>.py (or another script, see _script) as a module, to call its main(argv) in process."""
    spec = importlib.util.spec_from_file_location("ppresvar_tool_" + name.replace("/", "_"), _script(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name, args, **kw):
    """tools/<name>.py (or another script, see _script) in a subprocess; returns the CompletedProcess."""
    env = dict(kw.pop("env", None) or os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, _script(name)] + list(args),
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def cifar_args(archive, out, run_name, epochs=2, val=32, batch=32, processes=1):
    """configs/resnet20.yaml shortened to a tiny CIFAR-format archive (one
    process unless ``processes`` says otherwise: tests/tools/test_launch.py
    covers data parallel)."""
    return ["-c", os.path.join(ROOT, "configs", "resnet20.yaml"),
            "-o", "Global.cpu_processes=%d" % processes,
            "-o", "DataLoader.*.dataset.data_file=%s" % archive,
            "-o", "DataLoader.*.dataset.val_size=%d" % val,
            "-o", "DataLoader.*.num_workers=0", "-o", "DataLoader.*.batch_size=%d" % batch,
            "-o", "Global.iterations=null", "-o", "Global.epochs=%d" % epochs,
            "-o", "Optimizer.lr.milestones=[6, 9]", "-o", "Global.print_batch_step=2",
            "-o", "Global.output_dir=%s" % out, "-o", "Global.run_name=%s" % run_name]


def descendants(pid):
    """Pids of every live process below ``pid``, read from /proc/*/stat."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    stat = f.read()
            except OSError:  # ended meanwhile
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parent[int(name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return sorted(found)
