"""Checks of config values against a (kind, default) spec, shared by the
config loader (``ppresvar.engine.config``) and the data code, which
validates its own sections; every failure is a one-line ConfigError."""
import copy
import re

from .errors import ConfigError, suggest

__all__ = ["REQUIRED", "check_value", "describe_value", "unknown_key_error"]

REQUIRED = object()
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def unknown_key_error(path, key, valid, all_paths=()):
    full = path + key
    close = suggest(key, valid, n=1)
    if close:
        hint = "did you mean %s%s?" % (path, close[0])
    else:
        # a key put in the wrong section: look for its name elsewhere
        elsewhere = [p for p in all_paths if p.split(".")[-1] == key]
        if elsewhere:
            hint = "did you mean %s?" % elsewhere[0]
        else:
            hint = "valid keys here: %s" % ", ".join(sorted(valid))
    return ConfigError("unknown key %s: %s" % (full, hint))


def describe_value(value):
    return "%r (%s)" % (value, type(value).__name__)


def check_value(value, spec, key):
    """Check one value against a (kind, default) spec; returns the value to use."""
    kind, default = spec
    if value is REQUIRED:
        if default is REQUIRED:
            raise ConfigError("%s is required" % key)
        return copy.deepcopy(default)
    if isinstance(kind, tuple):
        if value not in kind:
            close = suggest(value, [str(k) for k in kind], n=1)
            hint = " (did you mean %s?)" % close[0] if close else ""
            raise ConfigError("%s must be one of %s, got %r%s" % (key, ", ".join(map(str, kind)), value, hint))
        return value
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        if nullable:
            return None
        raise ConfigError("%s must not be null (%s expected)" % (key, _KIND_NAMES.get(kind, kind)))
    checker = _CHECKS[kind]
    ok, converted = checker(value)
    if not ok:
        raise ConfigError("%s must be %s, got %s" % (key, _KIND_NAMES.get(kind, kind), describe_value(value)))
    return converted


def _is_int(v):
    return (not isinstance(v, bool) and isinstance(v, int)), v


def _is_float(v):
    if isinstance(v, bool):
        return False, v
    if isinstance(v, (int, float)):
        return True, float(v)
    # PyYAML reads 1e-4 (no dot) as a string; YAML 1.2 and the user mean a number
    if isinstance(v, str) and _FLOAT_RE.match(v.strip()):
        return True, float(v)
    return False, v


def _is_num(v):
    if _is_int(v)[0]:
        return True, v
    return _is_float(v)


def _is_int_list(v):
    if not isinstance(v, (list, tuple)):
        return False, v
    return all(_is_int(x)[0] for x in v), list(v)


_CHECKS = {
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: (isinstance(v, bool), v),
    "str": lambda v: (isinstance(v, str), v),
    "list": lambda v: (isinstance(v, list), v),
    "dict": lambda v: (isinstance(v, dict), v),
    "list[int]": _is_int_list,
    "num": _is_num,
}
_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "dict": "a mapping", "list[int]": "a list of integers",
               "num": "a number"}
