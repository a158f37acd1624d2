"""Designs from their dict (JSON/TOML) form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import DesignError
from .design import Concat, Design, Product
from .distributions import Distribution, distribution_from_dict
from .explicit import Grid, Points
from .sampled import LatinHypercube, Sample, Sobol
from .values import check_keys, check_name

__all__ = ["design_from_dict"]


# --------------------------------------------------------------------------------------------
# Dict form
# --------------------------------------------------------------------------------------------

_SAMPLED: dict[str, type[Design]] = {"sample": Sample, "lhs": LatinHypercube, "sobol": Sobol}
_KINDS = ("grid", "points", "sample", "lhs", "sobol", "product", "concat")


def _distribution(spec: Any, kind: str, name: Any) -> Distribution:
    try:
        return distribution_from_dict(spec)
    except DesignError as exc:
        msg = f"design {kind!r} parameter {name!r}: {exc}"
        raise DesignError(msg) from None


def _design_list(body: Any, kind: str) -> list[Design]:
    if not isinstance(body, (list, tuple)):
        msg = f"design {kind!r} takes a list of designs, got {body!r}"
        raise DesignError(msg) from None
    return [design_from_dict(item) for item in body]


def design_from_dict(d: Mapping[str, Any] | Design) -> Design:
    """Build a design from its dict form (the inverse of :meth:`Design.to_dict`).

    Parameters
    ----------
    d : dict
        One of ``{"grid": {name: [values]}}``, ``{"points": [{name: value}, ...]}``,
        ``{"sample" | "lhs": {"n": .., "seed": .., "params": {name: dist}}}``,
        ``{"sobol": {"n": .., "seed": .., "scramble": true, "params": {...}}}``
        (``scramble`` optional, default true), ``{"product": [d1, d2, ...]}`` or
        ``{"concat": [d1, d2, ...]}``. A distribution is a dict such as ``{"dist":
        "normal", "loc": 3.0, "scale": 0.05}`` or ``[low, high]`` for a uniform (see
        :func:`ensembles.sweep.distributions.distribution_from_dict`). A :class:`Design` is
        returned unchanged.

    Examples
    --------
    >>> design_from_dict({"grid": {"T": [1.5, 2.0]}})
    Grid(T=[1.5, 2.0])
    >>> design_from_dict({"sample": {"n": 4, "seed": 1, "params": {"x": [0, 10]}}})
    Sample(n=4, seed=1, x=Uniform(low=0.0, high=10.0))
    """
    if isinstance(d, Design):
        return d
    if not isinstance(d, Mapping) or len(d) != 1:
        msg = (
            f"a design dict must have exactly one key, one of {list(_KINDS)!r} (e.g. "
            f"{{'grid': {{'T': [1.5, 2.0]}}}}), got {d!r}"
        )
        raise DesignError(msg) from None
    ((kind, body),) = d.items()
    if kind == "grid":
        if not isinstance(body, Mapping):
            msg = f"design 'grid' takes a dict of name to list of values, got {body!r}"
            raise DesignError(msg) from None
        for name in body:
            check_name(name, "Grid")
        return Grid(**body)
    if kind == "points":
        return Points(body)
    if kind in _SAMPLED:
        if not isinstance(body, Mapping):
            msg = f"design {kind!r} takes a dict with 'n', 'seed' and 'params', got {body!r}"
            raise DesignError(msg) from None
        optional = ("scramble",) if kind == "sobol" else ()
        check_keys(body, ("n", "seed", "params"), optional, f"design {kind!r}")
        params = body["params"]
        if not isinstance(params, Mapping):
            msg = f"design {kind!r} params must be a dict of name to distribution, got {params!r}"
            raise DesignError(msg) from None
        dists = {name: _distribution(spec, kind, name) for name, spec in params.items()}
        return _SAMPLED[kind](**{**body, "params": dists})
    if kind == "product":
        return Product(*_design_list(body, kind))
    if kind == "concat":
        return Concat(*_design_list(body, kind))
    msg = f"unknown design {kind!r}; use one of {list(_KINDS)!r}"
    raise DesignError(msg) from None
