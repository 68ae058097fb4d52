#!/usr/bin/env python
"""Write docs/reproductions.md from results/experiments.yaml and results/.

    python scripts/ledger.py            rewrite it
    python scripts/ledger.py --check    exit 1 when it is out of date (the tests run this)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    from ppresvar import ledger

    if a.check:
        if not ledger.check():
            sys.exit("docs/reproductions.md is out of date: run python scripts/ledger.py")
        print("docs/reproductions.md is up to date")
        return
    print("wrote %s" % ledger.write())


if __name__ == "__main__":
    main()
