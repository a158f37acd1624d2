"""Sampled designs along one ``sample`` dim: Sample, LatinHypercube and Sobol."""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import DesignError
from ..layout import SAMPLE_DIM
from .design import Coords, Design
from .distributions import Distribution, as_distribution, distribution_from_dict
from .values import check_int, check_keys, check_name, kwargs_repr

__all__ = ["LatinHypercube", "Sample", "Sobol", "stream_key"]


# --------------------------------------------------------------------------------------------
# Sampled designs
# --------------------------------------------------------------------------------------------


def stream_key(name: str) -> int:
    """The stable 32-bit spawn key of parameter ``name``'s random stream in :class:`Sample`."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True, init=False, repr=False)
class _Sampled(Design):
    """Shared parts of the designs that draw ``n`` points from distributions."""

    n: int
    seed: int
    dists: tuple[tuple[str, Distribution], ...]

    _OPTIONS: ClassVar[tuple[str, ...]] = ()  # keywords besides n, seed and the parameters

    def _init(self, n: Any, seed: Any, params: Any, kwargs: dict[str, Any]) -> None:
        cls = type(self).__name__
        n = check_int(n, f"{cls} n", minimum=1, example="n=64 points")
        seed = check_int(seed, f"{cls} seed", minimum=0, example="seed=0")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "seed", seed)
        if params is not None and not isinstance(params, Mapping):
            msg = f"{cls} params must be a dict of name to distribution, got {params!r}"
            raise DesignError(msg) from None
        params = dict(params or {})
        both = sorted(set(params) & set(kwargs))
        if both:
            msg = f"{cls} got {both!r} both in params= and as keywords; give each once"
            raise DesignError(msg) from None
        params.update(kwargs)
        if not params:
            msg = f"{cls} needs at least one parameter, e.g. {cls}(n=8, seed=0, T=Normal(0, 1))"
            raise DesignError(msg) from None
        dists = []
        for name, obj in params.items():
            check_name(name, cls)
            dists.append((name, as_distribution(obj, f"{cls} parameter {name!r}")))
        object.__setattr__(self, "dists", tuple(dists))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dists)

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE_DIM,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    def coords(self) -> Coords:
        return self._sample_coords()

    def _options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        body = {"n": self.n, "seed": self.seed, **self._options()}
        body["params"] = {name: dist.to_dict() for name, dist in self.dists}
        return {self.kind: body}

    @classmethod
    def _from_body(cls, body: Any) -> Design:
        kind = cls.kind
        if not isinstance(body, Mapping):
            msg = f"design {kind!r} takes a dict with 'n', 'seed' and 'params', got {body!r}"
            raise DesignError(msg) from None
        check_keys(body, ("n", "seed", "params"), cls._OPTIONS, f"design {kind!r}")
        params = body["params"]
        if not isinstance(params, Mapping):
            msg = f"design {kind!r} params must be a dict of name to distribution, got {params!r}"
            raise DesignError(msg) from None
        dists = {
            name: distribution_from_dict(spec, f"design {kind!r} parameter {name!r}")
            for name, spec in params.items()
        }
        return cls(**{**body, "params": dists})

    def __repr__(self) -> str:
        options = self._options()
        items = [("n", repr(self.n)), ("seed", repr(self.seed))]
        items += [(k, repr(v)) for k, v in options.items()]
        keywords = frozenset({"n", "seed", "params", *options})
        dists = kwargs_repr([(n, repr(d)) for n, d in self.dists], keywords, "params=")
        inner = ", ".join(f"{k}={v}" for k, v in items)
        return f"{type(self).__name__}({inner}, {dists})"


@dataclass(frozen=True, init=False, repr=False)
class Sample(_Sampled):
    """Independent random draws of ``n`` points, along one ``sample`` dimension.

    Each parameter has its own random stream, seeded by ``seed`` and a hash of the
    parameter's name, from which ``n`` uniforms are drawn in order and mapped through the
    distribution's ``ppf``. So a larger ``n`` extends a smaller one (the first rows are
    identical) and adding or removing a parameter leaves the other columns unchanged.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    seed : int
        Non-negative seed of the draws.
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> from ensembles.sweep.distributions import Choice, Normal
    >>> s = Sample(n=50, seed=123, T=Normal(3.0, 0.05), L=Choice([16, 32]))
    >>> s
    Sample(n=50, seed=123, T=Normal(loc=3.0, scale=0.05), L=Choice([16, 32]))
    >>> s.dims, s.shape
    (('sample',), (50,))
    >>> bigger = Sample(n=100, seed=123, T=Normal(3.0, 0.05), L=Choice([16, 32]))
    >>> bool((bigger.table()["T"][:50] == s.table()["T"]).all())
    True
    """

    kind = "sample"

    def __init__(
        self, /, *, n: int, seed: int, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._init(n, seed, params, kwargs)
        keys: dict[int, str] = {}
        for name in self.params:
            other = keys.setdefault(stream_key(name), name)
            if other != name:
                msg = (
                    f"Sample parameters {other!r} and {name!r} hash to the same random "
                    "stream; rename one of them"
                )
                raise DesignError(msg) from None

    def _table(self) -> dict[str, np.ndarray]:
        return self._draws(self.n)

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        # prefix-stable: the first k draws of each stream are those of Sample(n=k)
        head = self._draws(int(index.max()) + 1 if index.size else 0)
        return {name: values[index] for name, values in head.items()}

    def _draws(self, n: int) -> dict[str, np.ndarray]:
        """The first ``n`` values of each parameter's stream."""
        out = {}
        for name, dist in self.dists:
            seq = np.random.SeedSequence(self.seed, spawn_key=(stream_key(name),))
            out[name] = dist.ppf(np.random.default_rng(seq).random(n))
        return out


def _qmc_engine(cls: type, d: int, seed: int, **options: Any) -> Any:
    """A scipy.stats.qmc engine seeded by a Generator (same points for ``seed=``/``rng=``)."""
    generator = np.random.default_rng(seed)
    keyword = "rng" if "rng" in inspect.signature(cls).parameters else "seed"
    return cls(d, **options, **{keyword: generator})


@dataclass(frozen=True, init=False, repr=False)
class LatinHypercube(_Sampled):
    """Latin hypercube sample of ``n`` points (``scipy.stats.qmc.LatinHypercube``).

    Each parameter's range is cut into ``n`` equally likely strata with one point in each.
    The points are stratified jointly: changing ``n`` or the parameters changes every point
    (no prefix stability; use :class:`Sample` or :class:`Sobol` to extend a run later).

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    seed : int
        Non-negative seed.
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> d = LatinHypercube(n=4, seed=0, x=(0.0, 1.0))
    >>> sorted((d.table()["x"] * 4).astype(int).tolist())
    [0, 1, 2, 3]
    """

    kind = "lhs"

    def __init__(
        self, /, *, n: int, seed: int, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._init(n, seed, params, kwargs)

    def _table(self) -> dict[str, np.ndarray]:
        from scipy.stats import qmc  # loads on first use: scipy.stats is slow to import

        u = _qmc_engine(qmc.LatinHypercube, len(self.dists), self.seed).random(self.n)
        return {name: dist.ppf(u[:, i]) for i, (name, dist) in enumerate(self.dists)}


@dataclass(frozen=True, init=False, repr=False)
class Sobol(_Sampled):
    """Sobol' low-discrepancy sequence of ``n`` points (``scipy.stats.qmc.Sobol``).

    A sequence: a larger ``n`` with the same seed extends a smaller one. Its balance
    properties hold for ``n`` a power of 2 (8, 16, 32, ...); other ``n`` are accepted
    without scipy's warning. With ``scramble=False`` the seed is unused and the first
    point is the origin, which unbounded distributions map to a finite extreme
    (``ppf(2**-53)``).

    Parameters
    ----------
    n : int
        Number of points, >= 1; preferably a power of 2.
    seed : int
        Non-negative seed of the scrambling.
    scramble : bool
        Scramble the sequence (default True; recommended).
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> from ensembles.sweep.distributions import Normal
    >>> s = Sobol(n=8, seed=0, x=(0.0, 1.0), y=Normal(0.0, 1.0))
    >>> s
    Sobol(n=8, seed=0, scramble=True, x=Uniform(low=0.0, high=1.0), y=Normal(loc=0.0, scale=1.0))
    >>> longer = Sobol(n=16, seed=0, x=(0.0, 1.0), y=Normal(0.0, 1.0))
    >>> bool((longer.table()["x"][:8] == s.table()["x"]).all())
    True
    """

    scramble: bool

    kind = "sobol"
    _OPTIONS = ("scramble",)

    def __init__(
        self,
        /,
        *,
        n: int,
        seed: int,
        scramble: bool = True,
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(scramble, (bool, np.bool_)):
            msg = f"Sobol scramble must be True or False, got {scramble!r}"
            raise DesignError(msg) from None
        object.__setattr__(self, "scramble", bool(scramble))
        self._init(n, seed, params, kwargs)

    def _table(self) -> dict[str, np.ndarray]:
        from scipy.stats import qmc

        engine = _qmc_engine(qmc.Sobol, len(self.dists), self.seed, scramble=self.scramble)
        with warnings.catch_warnings():
            # documented: n need not be a power of 2 (the points are still a prefix)
            warnings.filterwarnings("ignore", message=".*balance properties", category=UserWarning)
            u = engine.random(self.n)
        return {name: dist.ppf(u[:, i]) for i, (name, dist) in enumerate(self.dists)}
