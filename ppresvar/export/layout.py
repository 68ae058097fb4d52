"""What an export folder holds::

    inference.json | inference.pdmodel   the program (Paddle 3.x PIR | Paddle 2.x)
    inference.pdiparams                  the weights, for the program
    model.safetensors                    the weights as a state dict, for sharing
    inference.onnx                       optional, through paddle2onnx
    preprocess.json                      size, mean, std, class names, eval transforms

Which program format is there is found by looking at the files, never by
reading a version string.
"""
import json
import os

from ..errors import CheckpointError, UserError

__all__ = ["PREFIX", "META_FILE", "SAFETENSORS_FILE", "ONNX_FILE", "INPUT_NAME", "ExportError", "model_files",
           "load_meta"]

PREFIX = "inference"
META_FILE = "preprocess.json"
SAFETENSORS_FILE = "model.safetensors"
ONNX_FILE = PREFIX + ".onnx"
INPUT_NAME = "x"


class ExportError(UserError):
    pass


def model_files(path):
    """``(program_file, params_file)`` of an export directory (or a
    ``dir/prefix`` path): ``prefix.json`` (Paddle 3.x, PIR) or
    ``prefix.pdmodel`` (Paddle 2.x), whichever is there."""
    if os.path.isdir(path):
        prefix = os.path.join(path, PREFIX)
    else:
        prefix = path
        for ext in (".json", ".pdmodel", ".pdiparams"):
            if prefix.endswith(ext):
                prefix = prefix[: -len(ext)]
    params = prefix + ".pdiparams"
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext):
            if not os.path.isfile(params):
                raise CheckpointError("%s has no weights file %s" % (prefix + ext, params))
            return prefix + ext, params
    raise CheckpointError("no exported model at %s: expected %s.json (Paddle 3.x) or %s.pdmodel "
                          "(Paddle 2.x) with .pdiparams; run tools/export.py first" % (path, prefix, prefix))


def load_meta(model_dir):
    """The ``preprocess.json`` saved beside an export ({} when absent)."""
    path = os.path.join(model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir), META_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError("%s is not readable JSON (%s): the export is damaged; export it again with "
                              "tools/export.py" % (path, e))
    if not isinstance(meta, dict):
        raise CheckpointError("%s does not hold a JSON object: the export is damaged; export it again with "
                              "tools/export.py" % path)
    return meta
