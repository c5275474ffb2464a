"""The extracted users as columns: what ``extract_users`` hands to ``compute_inactivity``.

A list of :class:`~atlassian_cleanup.decisions.records.UserRecord` dicts costs about 1.5 KB per user in
Python (a dict, its keys and a dozen small strings each), so a 1,000,000-user organisation needs
1.5 GB before anything is planned. :class:`UserTable` holds the same fields column by column and is
filled page by page while the directory is read, so no list of user dicts ever exists:

* low-cardinality fields (``status``, ``account_type``, ``claim_status``, ``time_zone``, ...) are
  dictionary-encoded: an ``int32`` code per user and each distinct value once;
* ``added_to_org``, ``last_active`` and each product's last activity are seconds since the epoch
  (``float64``, NaN when unknown), parsed once here instead of on every planning run;
* list fields (``platform_roles``, ``groups``, ``group_ids``) and ``product_access`` are stored
  flat: a count per user plus the concatenated (encoded) values;
* ``product_last_active`` is the JSON evidence string the plan and the audit carry
  (``{"confluence": null, "jira": "2026-07-15T09:00:00Z"}``, sorted keys), encoded once from the
  user's ``product_access`` exactly as Atlassian reported it;
* e-mail addresses are kept as reported; the few whose comparison key (stripped, lower case)
  differs are listed with their key, so matching protected addresses needs no per-user work.

:meth:`UserTable.to_json` / :meth:`UserTable.from_json` give a JSON-native form for XCom, with the
numeric columns as base64 bytes. numpy and pandas only: no Airflow, no HTTP.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

#: Marks the JSON form so a consumer can tell a table from a list of records.
FORMAT = "atlassian_cleanup.decisions.user_table/1"

#: Plain string columns (mostly unique per user).
PLAIN_FIELDS: tuple[str, ...] = ("account_id", "email", "name")
#: Dictionary-encoded columns (few distinct values).
CODED_FIELDS: tuple[str, ...] = (
    "account_type",
    "status",
    "account_status",
    "membership_status",
    "claim_status",
    "management_source",
    "email_domain",
    "time_zone",
)
#: Timestamp columns, as seconds since the epoch.
TIME_FIELDS: tuple[str, ...] = ("added_to_org", "last_active")
#: List columns, stored flat (counts per user + encoded values).
LIST_FIELDS: tuple[str, ...] = ("platform_roles", "groups", "group_ids")
#: The encoded product keys, as reported (``jira-software``, ``confluence``, ...).
PRODUCTS = "product_access"

_JSON = json.JSONEncoder(sort_keys=True)
_CODE = np.int32
_FLOAT = np.float64


def _clean(value: Any) -> Any:
    """NaN (a missing cell of a DataFrame) as None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _column(records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    try:
        return list(map(itemgetter(name), records))
    except KeyError:  # a hand-built record without every field
        return [record.get(name) for record in records]


def import_timestamp_parser() -> None:
    """Import pandas, which :func:`epoch_seconds` parses with (0.4 s, more without bytecode caches).

    The extraction calls this in a thread while its first pages are on the wire, so the import
    does not stall the page loop at the first batch.
    """
    import pandas  # noqa: F401


def epoch_seconds(values: Sequence[Any]) -> np.ndarray:
    """ISO-8601 strings / datetimes / None -> seconds since the epoch (NaN when missing).

    Naive values count as UTC, like :func:`atlassian_cleanup.decisions.records.parse_timestamp`.
    """
    if len(values) == 0:
        return np.empty(0, dtype=_FLOAT)
    import pandas as pd

    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    result: np.ndarray = seconds.to_numpy(dtype=_FLOAT, na_value=np.nan)
    return result


def evidence_json(accesses: Sequence[Mapping[str, Any]]) -> list[str]:
    """``product_access`` dicts -> their JSON strings (sorted keys), encoded in one C-level pass.

    The batch is encoded as one JSON array and split at the dict boundaries; when a value itself
    contains the boundary text the split cannot be trusted, and each dict is encoded alone.
    """
    if len(accesses) <= 1:
        return [_JSON.encode(access) for access in accesses]
    text = json.dumps(list(accesses), sort_keys=True)
    pieces = text[1:-1].replace("}, {", "}\x00{").split("\x00")  # JSON never holds a raw NUL
    if len(pieces) == len(accesses):
        return pieces
    return [_JSON.encode(access) for access in accesses]


def _pack(array: np.ndarray) -> dict[str, str]:
    return {"dtype": array.dtype.str, "b64": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode()}


def _unpack(data: Mapping[str, str]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data["b64"]), dtype=np.dtype(data["dtype"])).copy()


class UserTable:
    """The extracted users, column by column (see the module docstring).

    Read with :meth:`array` (numeric columns: ``<coded field>`` codes, ``added_to_org``,
    ``last_active``, ``<list field>.counts`` / ``.codes``, ``product_access.counts`` / ``.codes`` /
    ``.last``), :meth:`values` (the distinct values a code column indexes), :attr:`plain`
    (``account_id``, ``email``, ``name`` lists), :attr:`product_last_active` and
    :meth:`email_keys`. Fill with :meth:`extend`.
    """

    def __init__(self) -> None:
        self.plain: dict[str, list[Any]] = {name: [] for name in PLAIN_FIELDS}
        self.product_last_active: list[str] = []
        self._values: dict[str, list[Any]] = {}
        self._index: dict[str, dict[Any, int]] = {}
        self._chunks: dict[str, list[np.ndarray]] = {}
        self._email_keys: dict[int, str] = {}
        self._objects: dict[str, np.ndarray] = {}

    # -- reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.plain["account_id"])

    @property
    def account_ids(self) -> list[str]:
        return self.plain["account_id"]

    def array(self, name: str) -> np.ndarray:
        """A numeric column (see the class docstring); empty when nothing was added."""
        chunks = self._chunks.get(name) or []
        if len(chunks) != 1:
            dtype = _FLOAT if name in TIME_FIELDS or name.endswith(".last") else _CODE
            merged = np.concatenate(chunks) if chunks else np.empty(0, dtype=dtype)
            self._chunks[name] = [merged]
            return merged
        return chunks[0]

    def objects(self, name: str) -> np.ndarray:
        """A plain column (or ``product_last_active``) as a numpy object array, built once."""
        found = self._objects.get(name)
        if found is None:
            values = self.product_last_active if name == "product_last_active" else self.plain[name]
            found = self._objects[name] = np.empty(len(values), dtype=object)
            found[:] = values
        return found

    def values(self, name: str) -> list[Any]:
        """The distinct values of a dictionary-encoded column, indexed by its codes."""
        return self._values.setdefault(name, [])

    def decoded(self, name: str) -> list[Any]:
        """A dictionary-encoded column as a plain list of values."""
        return self.decoded_values(name, name)

    def decoded_values(self, codes_name: str, values_name: str) -> list[Any]:
        """The values of ``values_name`` that the codes in array ``codes_name`` point at."""
        values = self.values(values_name)
        return [values[code] for code in self.array(codes_name).tolist()]

    def value_counts(self, name: str) -> dict[str, int]:
        """Users per value of a dictionary-encoded column, sorted by value (for log lines)."""
        values = self.values(name)
        counts = np.bincount(self.array(name), minlength=len(values)).tolist() if len(self) else []
        return dict(
            sorted((str(value), count) for value, count in zip(values, counts, strict=False) if count)
        )

    def never_active(self) -> int:
        """Users without a ``last_active`` time."""
        return int(np.isnan(self.array("last_active")).sum())

    def email_keys(self) -> dict[int, str]:
        """User index -> comparison key (stripped, lower case) where it differs from ``email``."""
        return self._email_keys

    def has_activity(self) -> np.ndarray:
        """Per user: ``last_active`` is known or some product has a last-active time."""
        seen: np.ndarray = ~np.isnan(self.array("last_active"))
        last = self.array(f"{PRODUCTS}.last")
        if len(last):
            users = np.repeat(np.arange(len(self)), self.array(f"{PRODUCTS}.counts"))
            seen[users[~np.isnan(last)]] = True
        return seen

    # -- building ----------------------------------------------------------------------------------

    def _encode(self, name: str, values: Iterable[Any]) -> np.ndarray:
        index = self._index.setdefault(name, {})
        known = self.values(name)
        values = list(values)
        for value in dict.fromkeys(values):  # distinct values, in order of first appearance
            if value not in index:
                index[value] = len(known)
                known.append(value)
        return np.array(list(map(index.__getitem__, values)), dtype=_CODE)

    def _add(self, name: str, array: np.ndarray) -> None:
        self._chunks.setdefault(name, []).append(array)

    def extend(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append users given as :class:`~atlassian_cleanup.decisions.records.UserRecord`-shaped mappings.

        Missing keys count as ``None`` (empty for lists); ``product_access`` may be a dict or its
        JSON string. The cost is per call, so pass pages or chunks rather than single users.
        """
        if not records:
            return
        self._objects.clear()
        start = len(self)
        self.plain["account_id"].extend(str(value) for value in _column(records, "account_id"))
        self.plain["name"].extend(_column(records, "name"))
        emails = _column(records, "email")
        self.plain["email"].extend(emails)
        for offset, email in enumerate(emails):
            if email:
                key = str(email).strip().lower()
                if key != email:
                    self._email_keys[start + offset] = key
        for name in CODED_FIELDS:
            self._add(name, self._encode(name, _column(records, name)))
        for name in TIME_FIELDS:
            self._add(name, epoch_seconds(_column(records, name)))
        for name in LIST_FIELDS:
            items = [values or () for values in _column(records, name)]
            self._add(f"{name}.counts", np.array([len(values) for values in items], dtype=_CODE))
            self._add(f"{name}.codes", self._encode(name, (value for values in items for value in values)))
        accesses = []
        for access in _column(records, PRODUCTS):
            if isinstance(access, str):
                access = json.loads(access) if access.strip() else {}
            accesses.append(dict(access or {}))
        self._add(f"{PRODUCTS}.counts", np.array([len(access) for access in accesses], dtype=_CODE))
        self._add(f"{PRODUCTS}.codes", self._encode(PRODUCTS, (key for access in accesses for key in access)))
        seen = [value for access in accesses for value in access.values()]
        self._add(f"{PRODUCTS}.last", epoch_seconds(seen))
        self.product_last_active.extend(evidence_json(accesses))

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], chunk: int = 10_000) -> UserTable:
        """A table from user records (any iterable, read ``chunk`` records at a time)."""
        table = cls()
        batch: list[Mapping[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= chunk:
                table.extend(batch)
                batch = []
        table.extend(batch)
        return table

    @classmethod
    def from_any(cls, users: Any) -> UserTable:
        """A table from a table, its JSON form, a DataFrame of records or a list of records."""
        if isinstance(users, UserTable):
            return users
        if isinstance(users, Mapping) and users.get("format") == FORMAT:
            return cls.from_json(users)
        if hasattr(users, "to_dict") and hasattr(users, "columns"):  # a DataFrame (no pandas import)
            # Missing cells of a frame are NaN: read them as None.
            records = ({key: _clean(value) for key, value in row.items()} for row in users.to_dict("records"))
            return cls.from_records(records)
        return cls.from_records(users if users is not None else [])

    def set_value(self, name: str, index: int, value: Any) -> None:
        """Change one user's value of a dictionary-encoded column."""
        self.array(name)[index] = self._encode(name, [value])[0]

    # -- reading back ------------------------------------------------------------------------------

    def records(self) -> Iterator[dict[str, Any]]:
        """The users as record-like dicts (timestamps as epoch seconds or None), one at a time."""
        columns: dict[str, list[Any]] = {name: self.plain[name] for name in PLAIN_FIELDS}
        columns.update({name: self.decoded(name) for name in CODED_FIELDS})
        columns.update({name: _none_for_nan(self.array(name)) for name in TIME_FIELDS})
        lists = {
            name: _split(self.array(f"{name}.counts"), self.decoded_values(f"{name}.codes", name))
            for name in LIST_FIELDS
        }
        keys = _split(self.array(f"{PRODUCTS}.counts"), self.decoded_values(f"{PRODUCTS}.codes", PRODUCTS))
        lasts = _split(self.array(f"{PRODUCTS}.counts"), _none_for_nan(self.array(f"{PRODUCTS}.last")))
        for i in range(len(self)):
            record = {name: values[i] for name, values in columns.items()}
            record.update({name: values[i] for name, values in lists.items()})
            record[PRODUCTS] = dict(zip(keys[i], lasts[i], strict=True))
            yield record

    # -- JSON form ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """JSON-native form (for XCom); :meth:`from_json` reads it back."""
        arrays = sorted(self._chunks)
        return {
            "format": FORMAT,
            "users": len(self),
            "plain": self.plain,
            "values": self._values,
            "arrays": {name: _pack(self.array(name)) for name in arrays},
            "evidence": self.product_last_active,
            "email_keys": {str(index): key for index, key in self._email_keys.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UserTable:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a user table (format {data.get('format')!r}, expected {FORMAT!r})")
        table = cls.from_parts(
            plain=data["plain"],
            evidence=data["evidence"],
            values=data["values"],
            arrays={name: _unpack(packed) for name, packed in data["arrays"].items()},
        )
        table._email_keys = {int(index): key for index, key in data.get("email_keys", {}).items()}
        return table

    def parts(self) -> tuple[dict[str, list[Any]], list[str], dict[str, list[Any]], dict[str, np.ndarray]]:
        """The table's columns: plain lists, evidence strings, distinct values, numeric arrays.

        :meth:`from_parts` builds the same table back (the columnar hand-off writes these).
        """
        arrays = {name: self.array(name) for name in sorted(self._chunks)}
        return self.plain, self.product_last_active, self._values, arrays

    @classmethod
    def from_parts(
        cls,
        *,
        plain: Mapping[str, list[Any]],
        evidence: list[str],
        values: Mapping[str, Sequence[Any]],
        arrays: Mapping[str, np.ndarray],
    ) -> UserTable:
        """A table from :meth:`parts` (the lists are taken over, not copied)."""
        table = cls()
        table.plain = {name: plain[name] for name in PLAIN_FIELDS}
        table.product_last_active = evidence
        table._values = {name: list(known) for name, known in values.items()}
        table._index = {
            name: {value: code for code, value in enumerate(known)} for name, known in table._values.items()
        }
        table._chunks = {name: [array] for name, array in arrays.items()}
        table._email_keys = {
            index: key
            for index, email in enumerate(table.plain["email"])
            if email and (key := str(email).strip().lower()) != email
        }
        for name in (*PLAIN_FIELDS, "product_last_active"):
            table.objects(name)  # the planner reads arrays; build them with the rest of the load
        return table


def _none_for_nan(array: np.ndarray) -> list[float | None]:
    return [None if value != value else value for value in array.tolist()]  # NaN != NaN


def _split(counts: np.ndarray, values: Sequence[Any]) -> list[list[Any]]:
    out, position = [], 0
    for count in counts.tolist():
        out.append(list(values[position : position + count]))
        position += count
    return out
