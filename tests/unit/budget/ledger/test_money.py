from decimal import Decimal

import pytest

import budget
from budget.money import format_usd, parse_usd, to_decimal, to_micro


@pytest.mark.parametrize(
    ("value", "micro"),
    [
        ("0.364", 364_000),
        (Decimal("0.129"), 129_000),
        (2, 2_000_000),
        ("  500.25 ", 500_250_000),
        ("-1.5", -1_500_000),
        ("0.0000005", 0),  # half-even: to the even micro-dollar
        ("0.0000015", 2),
        ("0.0000025", 2),
        ("1e-6", 1),
    ],
)
def test_to_micro_converts_dollars_rounding_half_even(value, micro):
    assert to_micro(value) == micro


def test_to_micro_refuses_floats_with_a_fix():
    message = r"^Money must not be a binary float: pass a str or Decimal like '0\.364', got 0\.364\.$"
    with pytest.raises(TypeError, match=message):
        to_micro(0.364)


@pytest.mark.parametrize("value", [True, None, [1]])
def test_to_micro_refuses_other_types(value):
    with pytest.raises(TypeError, match="Money must be a str, Decimal or int"):
        to_micro(value)


@pytest.mark.parametrize("value", ["NaN", "inf", Decimal("-Infinity"), Decimal("sNaN")])
def test_to_micro_refuses_non_finite_amounts(value):
    with pytest.raises(ValueError, match="finite"):
        to_micro(value)


def test_to_micro_refuses_text_that_is_not_a_number():
    with pytest.raises(ValueError, match=r"Not a dollar amount: 'abc'"):
        to_micro("abc")


def test_to_decimal_is_exact_and_round_trips():
    assert to_decimal(364_000) == Decimal("0.364")
    assert to_decimal(-1) == Decimal("-0.000001")
    assert to_micro(to_decimal(123_456_789)) == 123_456_789


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "$0.00"),
        (1_234_560_000, "$1,234.56"),
        (1_234_565_000, "$1,234.56"),  # half-even, display only
        (1_234_575_000, "$1,234.58"),
        (500_000_000, "$500.00"),
        (10_000, "$0.01"),
        (500_000, "$0.50"),
        (364_000, "$0.364"),
        (123_456, "$0.1235"),
        (364, "$0.0004"),
        (1, "$0.000001"),
        (-1_500_000, "-$1.50"),
        (-364_000, "-$0.364"),
        (1_000_001, "$1.00"),
        (10**30, "$1,000,000,000,000,000,000,000,000.00"),  # past Decimal's default 28 digits
    ],
)
def test_format_usd(micro, text):
    assert format_usd(micro) == text


def test_format_usd_refuses_floats():
    with pytest.raises(TypeError, match="int of micro-dollars"):
        format_usd(1.5)


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("500", 500_000_000),
        ("500.25", 500_250_000),
        ("$500", 500_000_000),
        (" $1,500.5 ", 1_500_500_000),
        ("-$3", -3_000_000),
        (".5", 500_000),
        ("0", 0),
    ],
)
def test_parse_usd_reads_what_people_type(text, micro):
    assert parse_usd(text) == micro


@pytest.mark.parametrize("text", ["", "abc", "$", "1,00", "1e3", "nan", "inf", "5 dollars", "1.2.3"])
def test_parse_usd_refuses_non_numbers_in_one_line(text):
    with pytest.raises(ValueError, match=r"^Not a dollar amount: .*\. Give a number like 500 or 500\.25\.$"):
        parse_usd(text)


@pytest.mark.parametrize("text", ["0", "-5"])
def test_parse_usd_positive_refuses_zero_and_below(text):
    with pytest.raises(ValueError, match=r"The amount must be more than \$0\. Got"):
        parse_usd(text, positive=True)


@pytest.mark.parametrize("text", ["0.0000001", "0.0000005"])
def test_parse_usd_positive_says_an_amount_below_one_micro_dollar_is_too_small_to_keep(text):
    with pytest.raises(ValueError, match=r"is less than one micro-dollar \(\$0\.000001\), the smallest amount"):
        parse_usd(text, positive=True)


def test_parse_usd_refuses_numbers_that_are_not_text():
    with pytest.raises(TypeError, match="Use to_micro for numbers"):
        parse_usd(500)


def test_package_exports_exactly_its_public_names():
    import types

    exported = {name for name in dir(budget)
                if not name.startswith("_") and not isinstance(getattr(budget, name), types.ModuleType)}
    assert set(budget.__all__) == exported
    assert len(budget.__all__) == len(set(budget.__all__))
