"""Which country a caller's number belongs to."""

import random

import phonenumbers
import pytest

from ivr.phone import country_of


def _full_parse(number):
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or None
    except phonenumbers.NumberParseException:
        return None


@pytest.mark.parametrize("number, country", [
    ("+33612345678", "FR"), ("+4915123456789", "DE"), ("+14155550123", "US"),
    ("+16135550123", "CA"), ("+442079460000", "GB"), ("+33 6 12 34 56 78", "FR"),
    ("anonymous", None), ("+266696687", None), ("0612345678", None), (None, None),
    ("+999123456", None),
])
def test_the_country_of_a_number(number, country):
    assert country_of(number) == country


def test_every_number_gets_the_country_a_full_parse_gives():
    """Numbers of every calling code, of every length, some of them not
    numbers at all: the shortcut for one-country calling codes never
    answers otherwise than phonenumbers' full parse."""
    rng = random.Random(14)
    codes = [*phonenumbers.COUNTRY_CODE_TO_REGION_CODE, 0, 28, 80, 99, 210]
    for _ in range(20_000):
        number = f"+{rng.choice(codes)}" + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(0, 14)))
        assert country_of(number) == _full_parse(number), number
