"""Build the oneDNN CPU kernels ahead of a run (for a machine that will
train without a network), or check that they load.

    python -m ppresvar.kernels                          fetch the headers if needed, build, load
    python -m ppresvar.kernels --headers-wheel FILE     use a copy of onednn-devel-cpu-iomp-2023.2.0's
                                                        wheel (checked against its pinned SHA-256)

Prints where the kernels are, or one ``error:`` line and exits with 2.
"""
import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ppresvar.kernels",
                                description="Build and load ppresvar's oneDNN CPU kernels (once per paddle version).")
    p.add_argument("--headers-wheel", metavar="FILE",
                   help="the onednn-devel-cpu-iomp==2023.2.0 wheel, for a machine without a network")
    args = p.parse_args(argv)
    from ppresvar import kernels

    try:
        if args.headers_wheel:
            kernels.unpack_headers(args.headers_wheel, kernels.headers_cache())
        module = kernels.load(say=print)
    except (kernels.KernelsUnavailable, OSError) as e:
        print("error: the oneDNN kernels are unavailable here: %s" % " ".join(str(e).split()), file=sys.stderr)
        return 2
    print("ppresvar: the oneDNN CPU kernels are built and load (%s, cache %s)"
          % (getattr(module, "__file__", None) or getattr(module, "__name__", "module"), kernels.cache_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
