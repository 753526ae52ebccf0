"""Argument checks and JSON encoding shared by :class:`budget.ledger.Ledger`'s verbs (private)."""

from __future__ import annotations

import json
import sqlite3
from numbers import Integral

from budget.exceptions import IdempotencyConflictError
from budget.money import format_usd


def _check_micro(value: object, name: str, caller: str, *, minimum: int = 0, unit: str = " (micro-dollars)") -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        hint = " Convert dollars with budget.to_micro('1.50')." if unit and not isinstance(value, Integral) else ""
        raise ValueError(f"The {name!r} parameter of {caller} must be an int >= {minimum}{unit}. "
                         f"Got {value!r} instead.{hint}")
    return int(value)


def _check_round(value: object, caller: str, *, optional: bool = True) -> None:
    if (value is not None or not optional) and (isinstance(value, bool) or not isinstance(value, Integral)):
        allowed = "an int or None" if optional else "an int"
        raise ValueError(f"The 'round' parameter of {caller} must be {allowed}. Got {value!r} instead.")


def _check_key(key: object, caller: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"The 'key' parameter of {caller} must be a non-empty str. Got {key!r} instead.")
    return key


def _check_choice(value: str | None, choices: tuple[str, ...], name: str, caller: str) -> None:
    if value is not None and value not in choices:
        among = "{" + ", ".join(repr(c) for c in choices) + "}"
        raise ValueError(f"The {name!r} parameter of {caller} must be a str among {among}. Got {value!r} instead.")


def _check_same_entry(row: sqlite3.Row, key: str, kind: str, reservation_id: int | None, amount: int | None) -> None:
    """Raise unless the journal row that ``key`` already names is the write asked for now."""
    same = row["kind"] == kind and row["reservation_id"] == reservation_id
    if not same or (amount is not None and row["amount_micro"] != amount):
        where = "" if row["reservation_id"] is None else f" on reservation {row['reservation_id']}"
        raise IdempotencyConflictError(f"Key {key!r} was already used for a {row['kind']} of "
                                       f"{format_usd(row['amount_micro'])}{where}; use a new key for this {kind}.",
                                       key=key)


def _dumps(value: object, name: str, caller: str) -> str:
    if not isinstance(value, dict):
        raise ValueError(f"The {name!r} parameter of {caller} must be a dict. Got {type(value).__name__} instead.")
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The {name!r} parameter of {caller} must be JSON-serialisable: {exc}.") from None
