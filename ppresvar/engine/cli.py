"""What every tool shares: ``-c/-o/--debug`` arguments and the error policy.

A :class:`ppresvar.errors.UserError` (bad config, missing data, damaged
checkpoint, NaN loss...) or an unknown model prints one line,
``error: <problem and fix>``, to stderr and exits with code 2; ``--debug``
shows the traceback instead. Anything else is a bug and keeps its traceback.
"""
import argparse
import sys

__all__ = ["base_parser", "run_tool", "load_config_from_args"]


def base_parser(description, config_required=True):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-c", "--config", required=config_required, metavar="FILE",
                   help="YAML config (see configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o Global.epochs=2 (YAML value; repeatable)")
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return p


def load_config_from_args(args, fallback_state=None):
    """The config from ``-c`` with the ``-o`` overrides applied. Without
    ``-c``, the resolved config stored in ``fallback_state`` (a checkpoint
    dict) or, when that is None, in the checkpoint named by
    ``-o Global.pretrained_model=PATH``."""
    from ..errors import ConfigError
    from .checkpoint import load_checkpoint
    from .config import apply_overrides, load_config, parse_override, validate

    if not args.config and fallback_state is None:
        weights = [v for k, v in map(parse_override, args.override) if k == ["Global", "pretrained_model"]]
        fallback_state = load_checkpoint(str(weights[-1])) if weights else None
    if args.config:
        return load_config(args.config, args.override)
    if fallback_state is not None and isinstance(fallback_state.get("config"), dict):
        return validate(apply_overrides(fallback_state["config"], args.override))
    raise ConfigError("no config: pass -c FILE (see configs/)")


def run_tool(main, debug=False):
    """Run ``main()``; map user errors to one line on stderr and exit code 2.
    In a rank that :func:`ppresvar.engine.launch.relaunch` started, a failure
    is also recorded for the launching process to report (launch.FAILURE_ENV)."""
    from ..errors import UserError
    from ..registry import UnknownModelError
    from .launch import record_failure

    try:
        return main()
    except (UserError, UnknownModelError) as e:
        message = " ".join(str(e).split())
        record_failure(e, message, user=True)
        if debug:
            raise
        sys.stderr.write("error: %s\n" % message)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        sys.stderr.write("interrupted: the last checkpoint written is kept; continue with --resume\n")
        sys.exit(130)
    except Exception as e:  # a bug: keeps its traceback
        record_failure(e, "%s: %s" % (type(e).__name__, " ".join(str(e).split())), user=False)
        raise
