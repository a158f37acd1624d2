"""What a simulation returns: declared outputs, the schema every member must match.

:class:`Output` declares one output (dims, shape, dtype); :class:`Schema` is the complete
set every member's result is checked against; :func:`normalize_result` turns a returned
mapping, :class:`xarray.Dataset`, :class:`Recorded` or bare number or array into arrays,
dims and coordinates.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError

__all__ = ["BARE", "Output", "Recorded", "Schema", "normalize_result", "storage_dtype"]


@dataclass(frozen=True)
class Output:
    """Declaration of one output of a simulation.

    Parameters
    ----------
    dims : tuple of str
        Names of the output's own dimensions (``()`` for a scalar).
    shape : tuple of int, optional
        Sizes of those dimensions; ``None`` to learn them from a probe member.
    dtype : numpy dtype-like, optional
        Element type; ``None`` to learn it from a probe member.
    attrs : dict
        Attributes stored with the variable (``units``, ``long_name``, ...).

    Examples
    --------
    >>> Output(dims=("sweep",), shape=(100,), dtype="float64", attrs={"units": "1"})
    Output(dims=('sweep',), shape=(100,), dtype=dtype('float64'), attrs={'units': '1'})
    """

    dims: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dims = (self.dims,) if isinstance(self.dims, str) else tuple(self.dims)
        object.__setattr__(self, "dims", dims)
        if self.shape is not None:
            shape = tuple(int(s) for s in self.shape)
            if len(shape) != len(dims):
                msg = (
                    f"Output shape {shape!r} has {len(shape)} sizes but dims {dims!r} "
                    f"name {len(dims)}"
                )
                raise SimulationError(msg)
            object.__setattr__(self, "shape", shape)
        if self.dtype is not None:
            object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "attrs", dict(self.attrs))

    @property
    def complete(self) -> bool:
        """True when shape and dtype are both known."""
        return self.shape is not None and self.dtype is not None


@dataclass(frozen=True)
class Schema:
    """The complete output schema of an ensemble's members.

    Attributes
    ----------
    outputs : dict of str to Output
        Every output, each with dims, shape and dtype known.
    coords : dict of str to numpy.ndarray
        Coordinate values of output dimensions (e.g. ``sweep``), where known.
    """

    outputs: Mapping[str, Output]
    coords: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes: dict[str, int] = {}
        for name, out in self.outputs.items():
            if not out.complete:
                msg = f"output {name!r} has no shape or dtype yet; declare them or probe a member"
                raise SimulationError(msg)
            for dim, size in zip(out.dims, out.shape, strict=True):
                if sizes.setdefault(dim, size) != size:
                    msg = (
                        f"dimension {dim!r} has size {sizes[dim]} in one output and {size} in "
                        f"output {name!r}; outputs that share a dimension must agree on its size"
                    )
                    raise SimulationError(msg)
        for dim, values in self.coords.items():
            if dim in sizes and len(values) != sizes[dim]:
                msg = (
                    f"coordinate {dim!r} has {len(values)} values but the dimension has "
                    f"{sizes[dim]}"
                )
                raise SimulationError(msg)

    @property
    def sizes(self) -> dict[str, int]:
        """Size of every output dimension."""
        out: dict[str, int] = {}
        for o in self.outputs.values():
            out.update(zip(o.dims, o.shape, strict=True))
        return out

    def check(
        self, result: Mapping[str, np.ndarray], member: str | Callable[[], str]
    ) -> dict[str, np.ndarray]:
        """Check one member's normalized result against the schema; return it cast.

        Parameters
        ----------
        result : mapping
            Normalized output arrays.
        member : str or callable
            The member's description for error messages (a callable is only called when
            there is an error to report).

        Raises
        ------
        OutputMismatchError
            When names, shapes or dtype kinds disagree; the message names ``member``.
        """
        outputs = self.outputs
        if len(result) >= len(outputs):  # the fast path: names, shapes and kinds agree
            try:
                fast = {k: result[k] for k in outputs}
            except KeyError:
                fast = None
            if fast is not None and all(
                fast[k].shape == o.shape and _castable(fast[k].dtype, o.dtype)
                for k, o in outputs.items()
            ):
                return fast
        if callable(member):
            member = member()
        missing = [k for k in self.outputs if k not in result]
        if missing:
            msg = f"{member} did not return output(s) {missing!r}; it returned {sorted(result)!r}"
            raise OutputMismatchError(msg)
        checked = {}
        for name, out in self.outputs.items():
            value = result[name]
            if value.shape != out.shape:
                msg = (
                    f"{member} returned {name!r} with shape {value.shape}, but the ensemble's "
                    f"schema says {out.shape} (dims {out.dims}); every member must return the "
                    "same shape"
                )
                raise OutputMismatchError(msg)
            if not _castable(value.dtype, out.dtype):
                msg = (
                    f"{member} returned {name!r} with dtype {value.dtype}, which cannot be stored "
                    f"as the ensemble's {out.dtype}"
                )
                raise OutputMismatchError(msg)
            checked[name] = value
        return checked

    def to_dict(self) -> dict:
        """JSON-ready form of the schema (coordinates excluded)."""
        return {
            name: {"dims": list(o.dims), "shape": list(o.shape), "dtype": o.dtype.str}
            for name, o in self.outputs.items()
        }


@functools.lru_cache(maxsize=256)
def _castable(src: np.dtype, dst: np.dtype) -> bool:
    return bool(np.can_cast(src, dst, casting="same_kind"))


def _is_dataset(obj: Any) -> bool:
    """True for an :class:`xarray.Dataset`, without importing xarray where nobody did.

    Workers that run plain functions never load xarray (about 100 MB with pandas); an
    object can only be a Dataset if xarray was imported.
    """
    xr = sys.modules.get("xarray")
    return xr is not None and isinstance(obj, xr.Dataset)


#: Bare results a simulation may return for its one output: numbers, numpy scalars, arrays,
#: lists (a tuple is refused: it reads as several outputs).
BARE = (int, float, complex, np.generic, np.ndarray, list)


class Recorded(Mapping[str, np.ndarray]):
    """What an adapter recorded for one member: named arrays, their dims, and coordinates.

    The form in which :class:`~.model_class.ModelClass` and :class:`~.mesa.MesaModel`
    hand a member's outputs to the engine: what an :class:`xarray.Dataset` of them would
    hold, without building one. A worker process that runs these members then never
    loads xarray, and with it dask and pint (a second and more of imports per process),
    and no member pays for a Dataset it is unpacked from at once. Calling the simulation
    by hand (``sim(seed=1)``) gives the Dataset (:meth:`to_dataset`).

    Parameters
    ----------
    arrays : mapping
        Output name to its values (one member's).
    dims : mapping
        Output name to the names of its dims, one per axis.
    coords : mapping, optional
        Dim name to its coordinate values.

    Examples
    --------
    >>> rec = Recorded({"x": np.array([0.5, 1.5])}, {"x": ("step",)}, {"step": [1, 2]})
    >>> rec["x"].tolist(), rec.dims["x"], list(rec)
    ([0.5, 1.5], ('step',), ['x'])
    >>> rec.to_dataset()["x"].dims
    ('step',)
    """

    def __init__(
        self,
        arrays: Mapping[str, Any],
        dims: Mapping[str, tuple[str, ...]],
        coords: Mapping[str, Any] | None = None,
    ) -> None:
        self.arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
        self.dims = {str(k): tuple(str(d) for d in v) for k, v in dims.items()}
        self.coords = {str(k): np.asarray(v) for k, v in (coords or {}).items()}
        for name, values in self.arrays.items():
            if len(self.dims.get(name, ())) != values.ndim:
                msg = (
                    f"output {name!r} has shape {values.shape} but is declared with dims "
                    f"{self.dims.get(name)!r}; give one dim name per axis"
                )
                raise OutputMismatchError(msg)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def __repr__(self) -> str:
        outputs = ", ".join(f"{k}{self.dims[k]!r}" for k in self.arrays)
        return f"<Recorded {outputs}>"

    def to_dataset(self) -> Any:
        """The same outputs as an :class:`xarray.Dataset` (coordinates on their dims)."""
        import xarray as xr

        data = {k: (self.dims[k], v) for k, v in self.arrays.items()}
        return xr.Dataset(data, coords={k: (k, v) for k, v in self.coords.items()})


def normalize_result(
    result: Any, dims_hint: Mapping[str, tuple[str, ...]], bare: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
    """Turn a simulation's return value into (arrays, dims, coords).

    Parameters
    ----------
    result : mapping, xarray.Dataset, Recorded, number, array or list
        What the simulation returned for one member.
    dims_hint : mapping
        Declared dims of some outputs; an entry named like one of their dims (and not an
        output itself) is that dim's coordinate. Other outputs get ``<name>_dim_<i>``.
    bare : str, optional
        The output name of a bare result (a number, numpy scalar, array or list); None
        refuses bare results.

    Raises
    ------
    OutputMismatchError
        For a result of another type, or an output whose rank disagrees with its dims.

    Examples
    --------
    >>> arrays, dims, coords = normalize_result([1.0, 2.0], {}, bare="energy")
    >>> arrays["energy"].tolist(), dims
    ([1.0, 2.0], {'energy': ('energy_dim_0',)})
    """
    if isinstance(result, Recorded):  # (a Mapping too: test it first)
        coords = {k: v for k, v in result.coords.items() if k not in result.arrays}
        return dict(result.arrays), dict(result.dims), coords
    if _is_dataset(result):  # (a Dataset is also a Mapping: test it first)
        arrays = {str(k): np.asarray(v.values) for k, v in result.data_vars.items()}
        dims = {str(k): tuple(str(d) for d in v.dims) for k, v in result.data_vars.items()}
        coords = {
            str(k): np.asarray(v.values) for k, v in result.coords.items() if k in result.dims
        }
        return arrays, dims, coords
    if isinstance(result, BARE) and bare is not None:
        result = {bare: result}
    elif not isinstance(result, Mapping):
        raise OutputMismatchError(_not_a_mapping(result, dims_hint))
    raw = {str(k): np.asarray(v) for k, v in result.items()}
    declared_dims = {d for ds in dims_hint.values() for d in ds}
    coords = {k: v for k, v in raw.items() if k in declared_dims and k not in dims_hint}
    arrays = {k: v for k, v in raw.items() if k not in coords}
    dims = {}
    for k, v in arrays.items():
        if k in dims_hint:
            dims[k] = tuple(dims_hint[k])
        else:
            dims[k] = tuple(f"{k}_dim_{i}" for i in range(v.ndim))
        if len(dims[k]) != v.ndim:
            msg = f"output {k!r} has {v.ndim} dimension(s) but is declared with dims {dims[k]!r}"
            raise OutputMismatchError(msg)
    return arrays, dims, coords


def _not_a_mapping(result: Any, dims_hint: Mapping[str, Any]) -> str:
    """Why a result that is neither a mapping nor a usable bare value was refused."""
    kind = type(result).__name__
    if isinstance(result, tuple):
        return (
            "a simulation returned a tuple; return a mapping of output name to value for "
            "several outputs (e.g. {'E': energy, 'M': magnetization}), or a list or "
            "array for one"
        )
    if isinstance(result, BARE) and len(dims_hint) > 1:
        return (
            f"a simulation returned a bare {kind} but declares outputs {sorted(dims_hint)!r}; "
            "a bare number or array stands for one output: return a mapping of output name "
            "to value"
        )
    if isinstance(result, BARE):
        return (
            f"a simulation returned a bare {kind} and has no name to store it under; return "
            "a mapping such as {'M': magnetization}, or declare its one output with "
            "outputs={'M': ...}"
        )
    return (
        f"a simulation must return a mapping of output name to value, an xarray.Dataset, or "
        f"one number or array, got {kind}; return e.g. {{'M': magnetization}}"
    )


def storage_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The dtype an output of ``dtype`` is stored as: numbers and booleans, as they are.

    Raises
    ------
    OutputMismatchError
        For strings, objects and other dtypes a store does not hold.
    """
    if dtype.kind in "biuf":
        return dtype
    if dtype.kind == "c":
        return dtype
    msg = (
        f"output {name!r} has dtype {dtype}; ensembles stores numeric and boolean outputs. "
        "Convert it to numbers, or encode categories as integers"
    )
    raise OutputMismatchError(msg)
