"""Errors in what a user gave (params, a manifest, audio, a file from elsewhere, a machine that failed): each says
in its message which key or file, and what to do, so the stages and `cmkd` print it alone, without a traceback.
Anything else is a bug in cmkd and keeps its traceback."""
from __future__ import annotations

import sys
from contextlib import contextmanager


class InputError(Exception):
    """The base of every error whose message is the whole story (ParamsError, ManifestError, AudioError, ...)."""


class ParamsError(InputError, ValueError):
    """params.yaml (or a params tree) that does not validate: every problem, each naming its key."""


@contextmanager
def reported():
    """Run a stage or command: an InputError ends it with its message on stderr and exit status 1."""
    try:
        yield
    except InputError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
