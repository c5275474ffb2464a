"""Column-wise building blocks of the planner and its reasons: numpy arrays of users, not loops.

A plan covers every user of an org at once (100,000 users in well under two seconds), so each fact
is a numpy column with one value per user, and facts about a user's products live in a *long
table* (one row per user and product, ``pu`` the user of each row, ``pc`` the product code).
Nothing here knows about policies or rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from atlassian_cleanup.days import days_between, utc_day
from atlassian_cleanup.decisions.user_table import UserTable

#: Products per user are kept as bit masks while planning when there are at most this many.
MAX_MASK_PRODUCTS = 62


def objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (never a 2-D array, whatever the items are)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def object_table(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array holding ``items`` themselves (lists stay list objects, not a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def dates(seconds: np.ndarray) -> np.ndarray:
    """Float seconds -> ``YYYY-MM-DD`` strings (None where NaN/inf); equal dates share one string."""
    out = np.full(len(seconds), None, dtype=object)
    ok = np.isfinite(seconds)
    if ok.any():
        days = utc_day(seconds[ok]).astype("int64")
        low, high = int(days.min()), int(days.max())
        if high - low < 1_000_000:  # a table of every day in the range: no sorting
            table = np.arange(low, high + 1).astype("datetime64[D]").astype(str).astype(object)
            out[ok] = table[days - low]
        else:
            unique, inverse = np.unique(days, return_inverse=True)
            out[ok] = unique.astype("datetime64[D]").astype(str).astype(object)[inverse]
    return out


def whole_days(as_of_s: float, seconds: np.ndarray) -> np.ndarray:
    """Calendar days from the UTC date of ``seconds`` to the run's date (NaN stays NaN; the future
    counts as 0): :func:`atlassian_cleanup.days.days_between`, the one day arithmetic."""
    return np.asarray(np.maximum(days_between(seconds, as_of_s), 0.0))


class Segments:
    """Per-user reductions over a long table (one row per user and product, say)."""

    def __init__(self, uid: np.ndarray, n: int) -> None:
        self.uid, self.n = uid, n

    def reduce(self, ufunc: np.ufunc, values: np.ndarray, fill: Any = np.nan) -> np.ndarray:
        """Per user, ``ufunc`` over the user's rows (``np.fmax`` / ``np.fmin`` skip NaN); ``fill`` if none."""
        out = np.full(self.n, fill, dtype=np.asarray(values).dtype if fill is not np.nan else float)
        if len(self.uid):
            ufunc.at(out, self.uid, values)  # faster than reduceat when most users have 1-3 rows
        return out


def first_match(uid: np.ndarray, codes: np.ndarray, labels: Sequence[str | None], n: int) -> np.ndarray:
    """Per user, the label of the first of their values that has one (``labels[code]``), else None."""
    out = np.full(n, None, dtype=object)
    hit_label = np.array([label is not None for label in labels], dtype=bool)
    if len(uid) == 0 or not hit_label.any():
        return out
    hit = hit_label[codes]
    if hit.any():
        # Reverse so the first match per user is the one that survives the fancy assignment.
        out[uid[hit][::-1]] = objects(labels)[codes[hit]][::-1]
    return out


def isin(values: np.ndarray, wanted: Iterable[Any], n: int) -> np.ndarray:
    """Which of ``values`` (an object array) are in ``wanted``."""
    wanted = set(wanted)
    if not wanted:
        return np.zeros(n, dtype=bool)
    if len(wanted) <= 8:  # element-wise equality runs in C; hashing a million strings does not
        hit = np.zeros(n, dtype=bool)
        for value in wanted:
            hit |= values == value
        return hit
    return np.fromiter(map(wanted.__contains__, values), dtype=bool, count=len(values))


def unique_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers, without sorting when their range is small."""
    if len(values) == 0:
        return values[:0], values[:0].astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low > 4_000_000:
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, inverse.reshape(-1)
    shifted = (values - low).astype(np.int64)
    present = np.flatnonzero(np.bincount(shifted, minlength=high - low + 1))
    lookup = np.zeros(high - low + 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return (present + low).astype(values.dtype), lookup[shifted]


def groups(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows whose ``parts`` (integral numbers, NaN allowed) are all equal.

    :return: ``(group of each row, first row of each group)``.
    """
    size = len(parts[0])
    key = np.zeros(size, dtype=np.int64)
    radix = 1
    for part in parts:
        values = np.asarray(part, dtype=float)
        known = ~np.isnan(values)
        low = values[known].min() if known.any() else 0.0
        span = int(values[known].max() - low) + 2 if known.any() else 1
        if radix * span >= 2**62:  # re-number the groups so far before the key overflows
            key = pd.factorize(key)[0].astype(np.int64)
            radix = int(key.max()) + 1 if size else 1
        key = key * span + np.where(known, values - low + 1, 0).astype(np.int64)
        radix *= span
    group, unique = pd.factorize(key)
    first = np.empty(len(unique), dtype=np.int64)
    first[group[::-1]] = np.arange(size - 1, -1, -1)  # the last write per group is its first row
    return group, first


def by_key(keys: np.ndarray, make: Callable[[Any], Any]) -> np.ndarray:
    """``make(key)`` for every element of ``keys``, computed once per distinct key."""
    if len(keys) == 0:
        return np.empty(0, dtype=object)
    if np.issubdtype(keys.dtype, np.integer):
        unique, inverse = unique_ints(keys)
    else:
        unique, inverse = np.unique(keys, return_inverse=True)
    return np.asarray(objects([make(key) for key in unique.tolist()])[inverse])


class Coded:
    """A dictionary-encoded column of the user table as numpy codes + the distinct values."""

    def __init__(self, table: UserTable, name: str) -> None:
        self.codes = table.array(name)
        self.values = list(table.values(name))

    def mask(self, test: Callable[[Any], bool]) -> np.ndarray:
        return np.asarray(np.array([bool(test(value)) for value in self.values], dtype=bool)[self.codes])

    def take(self, convert: Callable[[Any], Any] = lambda value: value) -> np.ndarray:
        return np.asarray(objects([convert(value) for value in self.values])[self.codes])


class ProductSets:
    """Per-user sets of canonical products, each set named by an integer *key* (0: no product).

    Equal sets have equal keys, so the reasons word each distinct set once. While there are at most
    :data:`MAX_MASK_PRODUCTS` products the key is the set's bit mask; with more, the sets are
    numbered as they are met.
    """

    def __init__(
        self, products: list[str], pu: np.ndarray, pc: np.ndarray, n: int, per_user: Segments
    ) -> None:
        self.products, self.pu, self.pc, self.n = products, pu, pc, n
        self.per_user = per_user
        self.use_masks = len(products) <= MAX_MASK_PRODUCTS
        self._numbered: dict[tuple[int, ...], int] = {(): 0}  # product codes -> key, without masks
        self._sets: list[tuple[int, ...]] = [()]

    def masks(self, keep: np.ndarray | None = None) -> np.ndarray:
        """Per user, the key of their set of products (those where ``keep`` is true)."""
        out = np.zeros(self.n, dtype=np.int64)
        if not len(self.pu):
            return out
        if not self.use_masks:
            return self._numbers(keep)
        bits = np.left_shift(np.int64(1), self.pc)
        if keep is not None:
            bits = np.where(keep, bits, 0)
        return self.per_user.reduce(np.bitwise_or, bits, fill=np.int64(0))

    def _numbers(self, keep: np.ndarray | None) -> np.ndarray:
        codes: list[list[int]] = [[] for _ in range(self.n)]
        order = np.lexsort((self.pc, self.pu))
        rows = order if keep is None else order[keep[order]]
        for user, code in zip(self.pu[rows].tolist(), self.pc[rows].tolist(), strict=True):
            codes[user].append(code)
        out = np.zeros(self.n, dtype=np.int64)
        for user, user_codes in enumerate(codes):
            if user_codes:
                key = self._numbered.setdefault(tuple(user_codes), len(self._sets))
                if key == len(self._sets):
                    self._sets.append(tuple(user_codes))
                out[user] = key
        return out

    def names(self, key: int) -> list[str]:
        """The products of the set ``key``, in product order."""
        if not self.use_masks:
            return [self.products[code] for code in self._sets[key]]
        return [product for bit, product in enumerate(self.products) if key >> bit & 1]

    def lists(self, keep: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Per user, the sorted list of their products where ``keep`` is true (``masks``: their keys).

        Users with the same products share one list object (a million users have a handful of
        distinct product sets): plan cells are read-only.
        """
        masks = self.masks(keep) if masks is None else masks
        unique, inverse = unique_ints(masks)
        return np.asarray(object_table([self.names(mask) for mask in unique.tolist()])[inverse])
