"""A test-only hook that injects a fault at a named moment of a run.

``PPRESVAR_TEST_FAULT=<action>@<moment>[@rank<r>]`` (tests/tools/test_faults.py
and test_launch.py) makes the process, when the run reaches ``<moment>``
(on rank ``r`` only, when given):

    kill     send itself SIGKILL
    raise    raise RuntimeError("injected fault")
    nan      turn that step's loss into NaN (moment ``loss:<iteration>``)
    slow<s>  sleep s seconds there (a rank that lags: a loader slow to start, a slow disk)

The moments, in run order:

    batch:<epoch>:<batch>                before the training loader gives that batch of the epoch
    loss:<iteration>                     the loss of that optimizer step computed (1-based, over the run)
    step:<iteration>                     after that optimizer step
    val:<epoch>:<batch>                  during validation, after that batch
    logged:<epoch>                       the epoch's metrics line written, no checkpoint yet
    ckpt-write:<epoch>:<file>            half of the file's bytes written (file: best or last)
    ckpt-written:<epoch>:<file>          the file in place, the next one not yet written

Unset (always, outside the tests) a moment costs one comparison.
"""
import os
import signal
import time

__all__ = ["ENV", "point"]

ENV = "PPRESVAR_TEST_FAULT"


def _parse(spec):
    if not spec:
        return None
    parts = spec.split("@")
    action, moment = parts[0], parts[1] if len(parts) > 1 else ""
    rank = int(parts[2][len("rank"):]) if len(parts) > 2 else None
    if rank is not None and rank != int(os.environ.get("PADDLE_TRAINER_ID", "0")):
        return None
    return action, moment


_TARGET = _parse(os.environ.get(ENV))


def point(*where):
    """Inject the fault asked for if ``where`` is its moment; returns True
    for a ``nan`` fault (the caller makes the value NaN)."""
    if _TARGET is None or _TARGET[1] != ":".join(str(w) for w in where):
        return False
    action = _TARGET[0]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith("slow"):
        time.sleep(float(action[len("slow"):]))
    if action == "raise":
        raise RuntimeError("injected fault")
    return action == "nan"
