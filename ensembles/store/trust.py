"""Whose run a store records: the specs this user's ensembles wrote, and what a spec runs.

Resuming a store runs the simulation its attributes name. A store received from someone
else can name any command, so ``ensembles resume`` asks first unless the spec is one that
ensembles wrote into a store on this machine as this user: it keeps the SHA-256 of every
spec it writes under the user's state directory. What a store says about its own origin
(provenance, its recorded hash) is never consulted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["STATE_ENV", "describe_run", "is_known", "remember", "spec_digest", "state_dir"]

#: Environment variable naming the directory where ensembles keeps its per-user state.
STATE_ENV = "ENSEMBLES_STATE_DIR"
_CODE_KEYS = ("function", "model", "mesa_model")


def state_dir() -> Path:
    """``$ENSEMBLES_STATE_DIR``, else ``$XDG_STATE_HOME/ensembles``, else
    ``~/.local/state/ensembles``."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    home_state = os.path.join(os.path.expanduser("~"), ".local", "state")
    base = os.environ.get("XDG_STATE_HOME") or home_state
    return Path(base) / "ensembles"


def spec_digest(text: str) -> str:
    """The SHA-256 of a spec's JSON text, as stored.

    Examples
    --------
    >>> spec_digest("{}")[:12]
    '44136fa355b3'
    """
    return hashlib.sha256(text.encode()).hexdigest()


def _record_path(text: str) -> Path:
    return state_dir() / "specs" / spec_digest(text)


def remember(text: str) -> bool:
    """Record that ensembles wrote this spec into a store; False if it could not be kept.

    A spec that cannot be recorded (a read-only home) only means that resuming the store
    later asks for confirmation.
    """
    path = _record_path(text)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        return True
    return False


def is_known(text: str) -> bool:
    """True when ensembles wrote exactly this spec into a store as this user."""
    path = _record_path(text)
    try:
        return path.read_text() == text
    except OSError:
        return False


def describe_run(spec: Mapping[str, Any], where: str) -> str:
    """What resuming a store runs, for the user to read before it runs.

    Examples
    --------
    >>> spec = {"simulation": {"command": ["sh", "-c", "echo {T}"], "output": "-"},
    ...         "fixed": {}, "run": {"seeds": 2}}
    >>> print(describe_run(spec, "r.zarr"))  # doctest: +NORMALIZE_WHITESPACE
    resuming r.zarr runs the simulation its attributes name, once per member not yet ok:
      runs the program: ['sh', '-c', 'echo {T}']
      simulation: {"command": ["sh", "-c", "echo {T}"], "output": "-"}
    """
    sim = spec.get("simulation")
    lines = [
        f"resuming {where} runs the simulation its attributes name, once per member not yet ok:"
    ]
    if isinstance(sim, Mapping):
        if "command" in sim:
            lines.append(f"  runs the program: {sim['command']!r}")
        for key in _CODE_KEYS:
            if key in sim:
                lines.append(f"  imports and calls Python code: {sim[key]!r}")
    lines.append(f"  simulation: {json.dumps(sim, sort_keys=True, default=repr)}")
    if spec.get("fixed"):
        lines.append(f"  fixed values: {json.dumps(spec['fixed'], sort_keys=True, default=repr)}")
    return "\n".join(lines)
