"""The seed tree: a member's stable key -> the integer seed it receives.

A member is a design point run with one seed index. Its seed is::

    SeedSequence(root_seed, spawn_key=(key_hi, key_lo, occurrence, seed_index))
        .generate_state(2, uint32)  ->  one 64-bit word  ->  its top ``bits`` bits

(``bits`` is the simulation's ``seed_bits``, 63 by default: seeds in ``[0, 2**63)``;
31 gives seeds in ``[0, 2**31)`` for programs that take a 32-bit signed integer.)

where ``key_hi, key_lo`` are the two halves of a 64-bit hash of the point's parameter
values and ``occurrence`` counts earlier points with the very same values (so duplicated
points, e.g. from a ``Choice``, still get distinct seeds). The seed therefore depends on
the root seed, the member's parameter values and its seed index only: not on worker count,
batch size, the order of the design, or on points added to it later.

:func:`member_seeds` evaluates exactly numpy's ``SeedSequence`` algorithm, vectorized
over members (about 10 µs per member through numpy's class, nanoseconds here);
:func:`member_seed` is the scalar reference through ``numpy.random.SeedSequence``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from ..errors import SimulationError

__all__ = [
    "DEFAULT_SEED_BITS",
    "check_seed_bits",
    "member_seed",
    "member_seeds",
    "point_keys",
]

#: Bits in a member's seed unless the simulation asks for fewer: seeds in ``[0, 2**63)``.
DEFAULT_SEED_BITS = 63

_MASK32 = 0xFFFFFFFF
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = 0xCA01F9DD
_MIX_MULT_R = 0x4973F715
_XSHIFT = 16
_POOL_SIZE = 4
_MAX_ROOT = 2**128


def _check_root(root_seed: int) -> list[int]:
    if isinstance(root_seed, (bool, np.bool_)) or not isinstance(root_seed, (int, np.integer)):
        msg = f"root_seed must be a non-negative integer, got {root_seed!r}"
        raise ValueError(msg)
    root = int(root_seed)
    if not 0 <= root < _MAX_ROOT:
        msg = f"root_seed must be in [0, 2**128), got {root_seed!r}"
        raise ValueError(msg)
    words = []
    while root:
        words.append(root & _MASK32)
        root >>= 32
    return words or [0]


def check_seed_bits(bits: object) -> int:
    """Validate a simulation's ``seed_bits``: an integer from 1 to 63.

    Raises
    ------
    SimulationError
        If ``bits`` is not an integer in ``[1, 63]``.

    Examples
    --------
    >>> check_seed_bits(31)
    31
    """
    if (
        isinstance(bits, (bool, np.bool_))
        or not isinstance(bits, (int, np.integer))
        or not 1 <= int(bits) <= DEFAULT_SEED_BITS
    ):
        msg = (
            f"seed_bits must be an integer from 1 to {DEFAULT_SEED_BITS}, got {bits!r}; it is "
            "the number of bits of each member's seed (31 for programs that take a 32-bit "
            "signed integer seed, such as R's set.seed)"
        )
        raise SimulationError(msg)
    return int(bits)


def member_seed(
    root_seed: int,
    key: int,
    occurrence: int,
    seed_index: int,
    bits: int = DEFAULT_SEED_BITS,
) -> int:
    """The seed of one member, through :class:`numpy.random.SeedSequence` (reference).

    Examples
    --------
    >>> s = member_seed(42, key=0x1234_5678_9ABC_DEF0, occurrence=0, seed_index=3)
    >>> 0 <= s < 2**63
    True
    >>> member_seed(42, 0x1234_5678_9ABC_DEF0, 0, 3, bits=31) == s >> 32
    True
    """
    _check_root(root_seed)
    bits = check_seed_bits(bits)
    key = int(key)
    ss = np.random.SeedSequence(
        int(root_seed),
        spawn_key=(key >> 32, key & _MASK32, int(occurrence), int(seed_index)),
    )
    return int(ss.generate_state(1, np.uint64)[0]) >> (64 - bits)


def member_seeds(
    root_seed: int,
    keys: np.ndarray,
    occurrences: np.ndarray,
    seed_indices: np.ndarray,
    bits: int = DEFAULT_SEED_BITS,
) -> np.ndarray:
    """Seeds of many members at once; equal to :func:`member_seed` element by element.

    Parameters
    ----------
    root_seed : int
        The ensemble's root seed, ``0 <= root_seed < 2**128``.
    keys : array of uint64
        Point keys from :func:`point_keys`.
    occurrences, seed_indices : arrays of int
        Broadcast against ``keys``; each must be below ``2**32``.
    bits : int
        Bits per seed, 1 to 63: the top ``bits`` bits of the SeedSequence's 64-bit word.

    Returns
    -------
    numpy.ndarray of int64
        Non-negative seeds below ``2**bits``, broadcast shape of the inputs.

    Examples
    --------
    >>> keys = np.array([1, 2, 3], dtype=np.uint64)
    >>> seeds = member_seeds(42, keys, np.zeros(3, int), np.arange(3))
    >>> int(seeds[1]) == member_seed(42, 2, 0, 1)
    True
    """
    root_words = _check_root(root_seed)
    shift = np.uint64(64 - check_seed_bits(bits))
    keys, occurrences, seed_indices = np.broadcast_arrays(
        np.asarray(keys, dtype=np.uint64),
        np.asarray(occurrences, dtype=np.int64),
        np.asarray(seed_indices, dtype=np.int64),
    )
    for name, arr in (("occurrence", occurrences), ("seed index", seed_indices)):
        if arr.size and (arr.min() < 0 or arr.max() > _MASK32):
            msg = f"{name} values must be in [0, 2**32), got range [{arr.min()}, {arr.max()}]"
            raise ValueError(msg)
    u32 = np.uint32
    # the entropy: root words padded to the pool size (numpy pads when a spawn key is
    # present), then the spawn key words
    if len(root_words) < _POOL_SIZE:
        root_words = root_words + [0] * (_POOL_SIZE - len(root_words))
    flat_keys = keys.ravel()
    entropy = [np.full(flat_keys.shape, w, dtype=u32) for w in root_words]
    entropy += [
        (flat_keys >> np.uint64(32)).astype(u32),
        (flat_keys & np.uint64(_MASK32)).astype(u32),
        occurrences.ravel().astype(u32),
        seed_indices.ravel().astype(u32),
    ]
    state = _generate_state(_mix_entropy(entropy))
    return (state >> shift).astype(np.int64).reshape(keys.shape)


def _mix_entropy(entropy: list[np.ndarray]) -> list[np.ndarray]:
    """``SeedSequence.mix_entropy``, vectorized: the pool of 4 words per member."""
    u32 = np.uint32
    hash_const = [_INIT_A]

    def hashmix(value: np.ndarray) -> np.ndarray:
        value = value ^ u32(hash_const[0])
        hash_const[0] = (hash_const[0] * _MULT_A) & _MASK32
        value = value * u32(hash_const[0])
        return value ^ (value >> u32(_XSHIFT))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = u32(_MIX_MULT_L) * x - u32(_MIX_MULT_R) * y
        return result ^ (result >> u32(_XSHIFT))

    with np.errstate(over="ignore"):
        pool = [hashmix(entropy[i]) for i in range(_POOL_SIZE)]
        for i_src in range(_POOL_SIZE):
            for i_dst in range(_POOL_SIZE):
                if i_src != i_dst:
                    pool[i_dst] = mix(pool[i_dst], hashmix(pool[i_src]))
        for i_src in range(_POOL_SIZE, len(entropy)):
            for i_dst in range(_POOL_SIZE):
                pool[i_dst] = mix(pool[i_dst], hashmix(entropy[i_src]))
    return pool


def _generate_state(pool: list[np.ndarray]) -> np.ndarray:
    """``SeedSequence.generate_state(2, uint32)`` read as one little-endian uint64."""
    u32 = np.uint32
    const_b = _INIT_B
    words = []
    with np.errstate(over="ignore"):
        for i_dst in range(2):
            value = pool[i_dst] ^ u32(const_b)
            const_b = (const_b * _MULT_B) & _MASK32
            value = value * u32(const_b)
            words.append(value ^ (value >> u32(_XSHIFT)))
    return words[0].astype(np.uint64) | (words[1].astype(np.uint64) << np.uint64(32))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _digest64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _value_bits(values: np.ndarray) -> np.ndarray:
    """64-bit words that identify each value: numbers by their float64 value."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        as_float = values.astype(np.float64) + 0.0  # -0.0 -> 0.0
        return as_float.view(np.uint64)
    uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    digests = np.array([_digest64("s:" + u) for u in uniques], dtype=np.uint64)
    return digests[inverse.ravel()]


def point_keys(table: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stable 64-bit keys of design points, and the occurrence count of each key.

    The key depends only on the parameter names and values of the point (numbers by value,
    so ``2`` and ``2.0`` are the same point), not on the order of parameters or points.

    Parameters
    ----------
    table : mapping of str to 1-D array
        Each parameter's values, one entry per point (``Design.table()``).

    Returns
    -------
    keys : numpy.ndarray of uint64
    occurrences : numpy.ndarray of int64
        For each point, how many earlier points have the same key.

    Examples
    --------
    >>> keys, occ = point_keys({"T": np.array([1.0, 2.0, 1.0])})
    >>> bool(keys[0] == keys[2]), occ.tolist()
    (True, [0, 0, 1])
    """
    n = len(next(iter(table.values()))) if table else 1
    with np.errstate(over="ignore"):
        h = np.zeros(n, dtype=np.uint64)
        for name in sorted(table):
            col = _value_bits(np.asarray(table[name]).ravel())
            h = _splitmix64(h ^ _splitmix64(col ^ np.uint64(_digest64("p:" + name))))
    order = np.argsort(h, kind="stable")
    sorted_keys = h[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    occurrences = np.empty(n, dtype=np.int64)
    occurrences[order] = np.arange(n) - run_start
    return h, occurrences
