import pytest

from budget.prices import (
    DEFAULT_DEVICE_PRICES,
    PAPER_LABEL_PRICES,
    DevicePrice,
    FlopPricing,
    LabelPrice,
    compute_cost,
    flop_cost,
    flop_seconds,
    label_cost,
    label_cost_from_time,
)


def test_paper_label_prices_are_micro_dollars():
    assert PAPER_LABEL_PRICES == {
        "stanceosaurus": 364_000,
        "multipit_id": 200_000,
        "wlp": 260_000,
        "fever": 129_000,
        "multipit_gen": 371_000,
        "nq": 129_000,
    }
    assert all(isinstance(v, int) for v in PAPER_LABEL_PRICES.values())


def test_label_cost_per_label_multiplies_items_by_overlap():
    price = LabelPrice.per_label("0.364")
    assert label_cost(price, 100, overlap=3) == 100 * 3 * 364_000
    assert label_cost(price, 0, overlap=1) == 0


def test_label_cost_hourly_estimate_rounds_up_to_the_micro_dollar():
    price = LabelPrice.hourly("15", seconds_per_label=20)
    # 15 $/h * 20 s = 83,333.33... micro-dollars a label; the batch total is rounded up once
    assert label_cost(price, 1, overlap=1) == 83_334
    assert label_cost(price, 3, overlap=1) == 250_000
    assert label_cost(price, 3, overlap=2) == 500_000


def test_label_cost_hourly_uses_the_float_seconds_as_written():
    # 0.1 s is 1/10 s, not 0.1000000000000000055...: 36 $/h * 0.1 s is exactly $0.001
    price = LabelPrice.hourly("36", seconds_per_label=0.1)
    assert label_cost(price, 1) == 1_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_items": 5, "overlap": 0}, r"The 'overlap' parameter of label_cost must be an int >= 1\. Got 0 instead\."),
        ({"n_items": 5, "overlap": 1.0}, r"The 'overlap' parameter of label_cost must be an int >= 1\. Got 1\.0"),
        ({"n_items": -1, "overlap": 1}, r"The 'n_items' parameter of label_cost must be an int >= 0\. Got -1"),
        ({"n_items": True, "overlap": 1}, r"The 'n_items' parameter of label_cost must be an int >= 0\. Got True"),
    ],
)
def test_label_cost_validates_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        label_cost(LabelPrice.per_label("0.2"), **kwargs)


@pytest.mark.parametrize(
    "price",
    [LabelPrice(), LabelPrice(per_label_micro=1, hourly_wage_micro=1, seconds_per_label=1.0)],
)
def test_label_cost_needs_exactly_one_kind_of_price(price):
    with pytest.raises(ValueError, match=r"The 'price' parameter of label_cost must set either per_label_micro"):
        label_cost(price, 1)


def test_label_price_refuses_float_dollars():
    with pytest.raises(TypeError, match="binary float"):
        LabelPrice.per_label(0.364)


def test_label_cost_from_time_settles_on_real_lead_time_rounding_up():
    price = LabelPrice.hourly("18", seconds_per_label=30)
    assert label_cost_from_time(price, 3600) == 18_000_000
    assert label_cost_from_time(price, 0) == 0
    assert label_cost_from_time(price, 0.0001) == 1  # $0.0000005 is still charged one micro-dollar


def test_label_cost_from_time_needs_an_hourly_wage():
    with pytest.raises(ValueError, match="label_cost_from_time needs an hourly wage"):
        label_cost_from_time(LabelPrice.per_label("0.2"), 10)


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), "10"])
def test_label_cost_from_time_validates_seconds(seconds):
    with pytest.raises(ValueError, match=r"The 'seconds' parameter of label_cost_from_time must be a finite number"):
        label_cost_from_time(LabelPrice.hourly("18", seconds_per_label=30), seconds)


def test_device_price_parses_dollar_strings():
    prices = DevicePrice.from_dollars(DEFAULT_DEVICE_PRICES)
    assert prices.per_hour_micro["cpu"] == 100_000
    assert prices.per_hour_micro["cuda"] == 2_500_000


def test_compute_cost_never_rounds_down():
    prices = DevicePrice.from_dollars({"cpu": "0.10", "cuda": "2.50"})
    assert compute_cost(prices, "cuda", 3600) == 2_500_000
    assert compute_cost(prices, "cuda", 1) == 695  # 694.44... rounded up
    assert compute_cost(prices, "cpu", 36) == 1_000
    assert compute_cost(prices, "cpu", 0.001) == 1
    assert compute_cost(prices, "cpu", 0) == 0


def test_compute_cost_ignores_the_device_index():
    prices = DevicePrice.from_dollars({"cuda": "2.50"})
    assert compute_cost(prices, "cuda:1", 3600) == 2_500_000


def test_compute_cost_names_the_device_kinds_it_knows():
    prices = DevicePrice.from_dollars({"cpu": "0.10", "cuda": "2.50"})
    message = r"The 'device_kind' parameter of compute_cost must be a str among \{'cpu', 'cuda'\}\. Got 'tpu' instead"
    with pytest.raises(ValueError, match=message):
        compute_cost(prices, "tpu", 1)


def test_flop_pricing_defaults_to_an_a100_at_two_dollars():
    pricing = FlopPricing()
    assert (pricing.reference_gpu, pricing.peak_flops, pricing.utilisation) == ("A100-80GB", 312e12, 0.4)
    assert pricing.price_per_hour == 2_000_000


def test_flop_cost_prices_gpu_hours_and_rounds_up():
    pricing = FlopPricing()
    one_hour = 312e12 * 0.4 * 3600
    assert flop_seconds(pricing, one_hour) == pytest.approx(3600)
    assert flop_cost(pricing, one_hour) == 2_000_000
    assert flop_cost(pricing, 2 * one_hour) == 4_000_000
    assert flop_cost(pricing, 1.0) == 1
    assert flop_cost(pricing, 0) == 0


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        (FlopPricing(utilisation=0), r"The 'utilisation' parameter of flop_seconds must be a float in the range"),
        (FlopPricing(utilisation=1.5), r"in the range \(0\.0, 1\.0\]\. Got 1\.5 instead"),
        (FlopPricing(peak_flops=0), r"The 'peak_flops' parameter of flop_seconds must be a finite number > 0"),
        (FlopPricing(price_per_hour=2.0), r"The 'price_per_hour' parameter of flop_seconds must be an int >= 0"),
    ],
)
def test_flop_pricing_is_validated_when_used(pricing, message):
    with pytest.raises(ValueError, match=message):
        flop_cost(pricing, 1e12)

