#!/usr/bin/env python
"""Run the experiments of the reproduction ledger (results/experiments.yaml).

    python reproduction/reproduce.py parity --data data/cifar-10-python.tar.gz --torch-python ~/torchvenv/bin/python
    python reproduction/reproduce.py rir                     (every row and seed of one experiment)
    python reproduction/reproduce.py he2015 --rows resnet20 --dry-run

For each row and seed: train in RUNS/<experiment>/<row>-seed<S> (--runs-dir,
default ~/ppresvar-runs: outside the work tree, checkpoints included), resume
it when it was stopped (run the same command again), evaluate the finished run
on the test split, and keep its small files in results/<experiment>/<row>/seed<S>/;
then rewrite docs/reproductions.md (reproduction/ledger.py). Rows already kept in
results/ are skipped. Long runs: start it with nohup ... & and come back.
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar.engine.cli import run_tool  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("experiment", help="a name of results/experiments.yaml (parity, he2015, rir, dyrelu, nam)")
    p.add_argument("--rows", default=None, help="comma-separated rows (default: all)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the row's)")
    p.add_argument("--runs-dir", default=os.environ.get("PPRESVAR_RUNS", os.path.join("~", "ppresvar-runs")),
                   help="where runs train, checkpoints included (default ~/ppresvar-runs or $PPRESVAR_RUNS)")
    p.add_argument("--data", default=None, help="the CIFAR archive (default: where the configs look: data/...)")
    p.add_argument("--torch-python", default=None, help="python of a venv with torch==2.13.0, for PyTorch rows")
    p.add_argument("--results", default=None, help="results folder (default: the repository's results/)")
    p.add_argument("--manifest", default=None, help="experiments file (default: results/experiments.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print what would run")
    p.add_argument("--allow-dirty", action="store_true",
                   help="start runs from a work tree with uncommitted changes, keeping the diff with the results")
    p.add_argument("--collect-only", action="store_true", help="keep finished runs, train nothing")
    p.add_argument("--halve-weights", action="store_true",
                   help="keep the experiment's float32 weights again in float16 where the ledger's tools/eval.py "
                        "command still gives each run's test figure (needs --data), train nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = p.parse_args(argv)

    def go():
        from ppresvar.errors import ConfigError, TrainingError
        from reproduction import ledger
        from reproduction import runner as reproduce

        manifest = reproduce.load_manifest(args.manifest or reproduce.MANIFEST)
        results = args.results or os.path.join(reproduce.ROOT, "results")
        runs = os.path.abspath(os.path.expanduser(args.runs_dir))
        data = os.path.abspath(args.data) if args.data else None
        if data is None and os.path.isfile(os.path.join(reproduce.ROOT, "data", "cifar-10-python.tar.gz")):
            data = os.path.join(reproduce.ROOT, "data", "cifar-10-python.tar.gz")
        rows = args.rows.split(",") if args.rows else None
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
        steps = reproduce.plan(manifest, args.experiment, rows, runs, results, data, seeds)
        if args.halve_weights:
            if not data:
                raise ConfigError("--halve-weights evaluates the kept weights: give the CIFAR archive with --data")
            reproduce.halve_kept_weights(manifest, args.experiment, results, sys.executable, data)
            steps = []
        for step in steps:
            if args.dry_run:
                print("%-8s %s/%s seed %d%s" % (step["action"], step["experiment"], step["row"], step["seed"],
                                               "  python " + " ".join(step["argv"]) if "argv" in step else ""))
                continue
            if step["action"].startswith("shared"):
                continue
            if step["action"] in ("train", "resume"):
                if args.collect_only:
                    continue
                code = reproduce.run_step(step, sys.executable, args.torch_python, allow_dirty=args.allow_dirty)
                if code != 0:
                    raise TrainingError("%s/%s seed %d stopped with exit code %d; fix the cause and run the same "
                                        "command again: it resumes" % (step["experiment"], step["row"],
                                                                        step["seed"], code))
                step["action"] = "collect"
            if step["action"] == "collect":
                reproduce.collect(step, sys.executable, args.torch_python, data)
        if not args.dry_run and args.results is None and args.manifest is None:
            path = ledger.write(manifest, results)
            print("wrote %s" % os.path.relpath(path, reproduce.ROOT))

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
