"""Errors a user can fix. Tools print them as one line and exit with code 2
(``--debug`` shows the traceback instead); everything else is a bug."""
import difflib


def suggest(name, choices, n=3):
    """The closest names to ``name`` among ``choices``, for a "did you mean"."""
    return difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.5)


class UserError(Exception):
    """Bad input: the message names the problem and the fix, on one line
    (whitespace, the newlines of a quoted library message included, is
    collapsed to single spaces)."""

    def __init__(self, message="", *args):
        super().__init__(" ".join(str(message).split()), *args)


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass


class TrainingError(UserError):
    """Training cannot go on (for example a NaN loss)."""
