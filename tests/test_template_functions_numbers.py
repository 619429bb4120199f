"""Numeric functions on ARM's 64-bit integers (Azure's reference, "Numeric functions"): .NET's
division and remainder, overflow an error, int() and min()/max()."""
from __future__ import annotations

import pytest

from tests.templatefns import call, fails

BIG, SMALL = 2**63 - 1, -(2**63)


def test_the_references_examples():
    assert call("add", 5, 3) == 8
    assert call("sub", 7, 3) == 4
    assert call("mul", 5, 3) == 15
    assert call("div", 8, 3) == 2
    assert call("mod", 7, 3) == 1
    assert call("int", "4") == 4
    assert call("min", [0, 3, 2, 5, 4]) == 0 and call("min", 0, 3, 2, 5, 4) == 0
    assert call("max", [0, 3, 2, 5, 4]) == 5 and call("max", 0, 3, 2, 5, 4) == 5


@pytest.mark.parametrize("a, b, q, r", [(7, 2, 3, 1), (-7, 2, -3, -1), (7, -2, -3, 1), (-7, -2, 3, -1)])
def test_div_truncates_and_mod_takes_the_dividends_sign(a, b, q, r):
    assert call("div", a, b) == q
    assert call("mod", a, b) == r


def test_overflow_is_an_error():
    assert call("add", BIG - 1, 1) == BIG
    fails("add", BIG, 1, match="overflows")
    fails("sub", SMALL, 1, match="overflows")
    fails("mul", 2**62, 2, match="overflows")
    fails("div", SMALL, -1, match="overflows")
    fails("mod", SMALL, -1, match="overflows")
    fails("int", "9223372036854775808", match="overflows")


def test_division_by_zero():
    fails("div", 8, 0, match="division by zero")
    fails("mod", 7, 0, match="division by zero")


def test_arguments_must_be_integers():
    fails("add", "5", 3, match="argument 1 must be an integer, not String")
    fails("mul", 5, True, match="argument 2 must be an integer, not Boolean")
    fails("sub", 5, match="takes 2")


def test_int():
    assert call("int", 4) == 4
    assert call("int", " -12 ") == -12
    assert call("int", "+7") == 7
    for bad in ("one", "1.5", "1_000", "", True, None):
        fails("int", bad, match="cannot be converted")


def test_min_max_mixed_and_errors():
    assert call("min", [6, 4], 8) == 4 and call("max", [6, 4], [8]) == 8
    assert call("max", 1) == 1
    fails("min", "one", "two", match="integer or an array of integers")
    fails("max", 1, "0", match="not String")
    fails("max", [], match="no integers")
