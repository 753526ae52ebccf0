"""Money as integer micro-dollars.

Inside the project every amount is an ``int`` of micro-dollars (1 USD = 1,000,000 micro-dollars).
Dollars enter through :func:`to_micro` or :func:`parse_usd` and leave through :func:`to_decimal` or
:func:`format_usd`; each rounds once, at that edge. A binary float is never money: ``0.1 + 0.2`` is
not ``0.3``, so :func:`to_micro` refuses floats instead of guessing what was meant.
"""

from __future__ import annotations

import decimal
import re
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["MICRO_PER_USD", "MAX_MICRO", "to_micro", "to_decimal", "format_usd", "parse_usd"]

#: micro-dollars in one US dollar
MICRO_PER_USD = 1_000_000
#: the most money an amount typed by a person may be: $1,000,000,000,000. The ledger keeps SQLite's 64-bit
#: integers (9.2e18 micro-dollars); this bound leaves room for sums of a run's grants, prices and reservations.
MAX_MICRO = 10**18

_MICRO_PER_CENT = 10_000
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN)
# "-$1,500.25", "+ 3", ".5": a sign, an optional "$", digits with optional thousands commas
_USD = re.compile(r"(?P<sign>[+-]?)\s*\$?\s*(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)")


def to_micro(value: Decimal | str | int) -> int:
    """Convert a dollar amount to integer micro-dollars, rounding half-even once.

    Parameters
    ----------
    value : Decimal, str or int
        Dollars: ``Decimal("0.364")``, ``"0.364"`` or ``2`` (two dollars, not two micro-dollars).

    Returns
    -------
    int
        The amount in micro-dollars; may be negative.

    Raises
    ------
    TypeError
        If ``value`` is a float (or a bool, or any other type).
    ValueError
        If ``value`` is not a number, or is NaN or infinite.

    Examples
    --------
    >>> to_micro("0.364")
    364000
    >>> to_micro("0.0000005")  # half-even: rounds to the even micro-dollar
    0
    """
    if isinstance(value, float):
        raise TypeError(f"Money must not be a binary float: pass a str or Decimal like '{value!r}', got {value!r}.")
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"Money must be a str, Decimal or int of dollars. Got {type(value).__name__} {value!r}.")
    if isinstance(value, int):
        return value * MICRO_PER_USD
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise ValueError(f"Not a dollar amount: {value!r}. Pass a number like '500' or '0.364'.") from None
    if not value.is_finite():
        raise ValueError(f"Money must be a finite number. Got {value!r}.")
    micro = _CONTEXT.multiply(value, Decimal(MICRO_PER_USD))
    return int(micro.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_CONTEXT))


def to_decimal(micro: int) -> Decimal:
    """Convert micro-dollars to an exact ``Decimal`` of dollars (six decimal places).

    >>> to_decimal(364000)
    Decimal('0.364000')
    """
    _check_int(micro, "to_decimal")
    return Decimal(micro).scaleb(-6, context=_CONTEXT)


def format_usd(micro: int) -> str:
    """Format micro-dollars for people: ``'$1,234.56'``, rounded half-even for display only.

    Amounts of a dollar or more, and whole cents, show two decimals. Smaller amounts that are not a
    whole cent show up to four decimals (``'$0.364'``, ``'$0.0004'``), or six when four would read
    as zero (``'$0.000001'``). Negative amounts read ``'-$1.50'``.

    >>> format_usd(1_234_560_000)
    '$1,234.56'
    >>> format_usd(364_000)
    '$0.364'
    """
    _check_int(micro, "format_usd")
    sign = "-" if micro < 0 else ""
    size = abs(micro)
    dollars = Decimal(size).scaleb(-6, context=_CONTEXT)
    if size >= MICRO_PER_USD or size % _MICRO_PER_CENT == 0:
        return f"{sign}${dollars.quantize(Decimal('0.01'), context=_CONTEXT):,}"
    text = _strip_to_cents(dollars.quantize(Decimal("0.0001"), context=_CONTEXT))
    if text == "0.00":
        text = _strip_to_cents(dollars.quantize(Decimal("0.000001"), context=_CONTEXT))
    return f"{sign}${text}"


def parse_usd(text: str, *, positive: bool = False) -> int:
    """Parse a dollar amount typed by a person (``"500"``, ``"500.25"``, ``"$1,500"``) into micro-dollars.

    Parameters
    ----------
    text : str
        The amount, optionally with a leading ``$`` and thousands commas.
    positive : bool, default=False
        If True, zero and negative amounts are refused.

    Returns
    -------
    int
        The amount in micro-dollars.

    Raises
    ------
    ValueError
        With a one-line message, if ``text`` is not a finite number or, with ``positive``, not above zero.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_usd reads text; got {type(text).__name__} {text!r}. Use to_micro for numbers.")
    match = _USD.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"Not a dollar amount: {text!r}. Give a number like 500 or 500.25.")
    amount = Decimal(match["sign"] + match["number"].replace(",", ""))
    micro = to_micro(amount)
    if positive and amount > 0 and micro <= 0:
        raise ValueError(f"{text!r} is less than one micro-dollar ($0.000001), the smallest amount the ledger "
                         "keeps; give at least 0.000001.")
    if positive and micro <= 0:
        raise ValueError(f"The amount must be more than $0. Got {text!r}.")
    if abs(micro) > MAX_MICRO:
        raise ValueError(f"{text!r} is more than {format_usd(MAX_MICRO)}, the most the ledger keeps; give a smaller "
                         "amount.")
    return micro


def _strip_to_cents(amount: Decimal) -> str:
    """``'0.3640'`` -> ``'0.364'``, ``'0.5000'`` -> ``'0.50'``: drop trailing zeros past the cents."""
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def _check_int(micro: object, caller: str) -> None:
    if isinstance(micro, bool) or not isinstance(micro, int):
        raise TypeError(f"{caller} takes an int of micro-dollars. Got {type(micro).__name__} {micro!r}.")
