"""format(): .NET composite formatting as ARM applies it (the reference's example, the common
numeric specifiers, escapes, and malformed formats)."""
from __future__ import annotations

import pytest

from tests.templatefns import call, fails


def test_the_references_example():
    assert call("format", "{0}, {1}. Formatted number: {2:N0}", "Hello", "User", 8175133) == \
        "Hello, User. Formatted number: 8,175,133"


@pytest.mark.parametrize("spec, value, expected", [
    ("N0", 8175133, "8,175,133"), ("N", 1234, "1,234.00"), ("N2", -1234567, "-1,234,567.00"),
    ("D", 42, "42"), ("D5", 42, "00042"), ("D3", -7, "-007"),
    ("X", 255, "FF"), ("x4", 255, "00ff"), ("X", -1, "FFFFFFFFFFFFFFFF"),
    ("F", 3, "3.00"), ("F0", 3, "3"), ("F1", -12, "-12.0"),
    ("P0", 1, "100 %"), ("E", 12345, "1.234500E+004"), ("e2", 12345, "1.23e+004"),
    ("G", 12345, "12345"), ("G2", 12345, "1.2E+04"), ("R", 9, "9"),
    ("C", 5, "¤5.00"), ("N99", 1, "1." + "0" * 99),
    ("E99", -2**63, "-9.223372036854775808" + "0" * 81 + "E+018"), ("000", 7, "007"), ("#,##0", 1234567, "1,234,567"), ("0.00", 5, "5.00"),
])
def test_numeric_specifiers(spec, value, expected):
    assert call("format", "{0:" + spec + "}", value) == expected


def test_escapes_alignment_and_value_kinds():
    assert call("format", "{{literal}} {0}", "x") == "{literal} x"
    assert call("format", "[{0,5}][{0,-5}]", "ab") == "[   ab][ab   ]"
    assert call("format", "{0} {1} {2}", True, None, 3) == "True  3"
    assert call("format", "{0}", {"a": "b", "n": [1, 2]}) == "{'a':'b','n':[1,2]}"
    assert call("format", "{1}{0}", "a", "b") == "ba"
    assert call("format", "{0:N2}", "text") == "text"  # strings ignore the specifier


@pytest.mark.parametrize("fmt", ["{0", "a}b", "{x}", "{0,abc}"])
def test_malformed_formats_fail(fmt):
    fails("format", fmt, 1, match="format")


def test_missing_argument_and_bad_types():
    fails("format", "{1}", "only one", match="has no argument")
    fails("format", 1, "1", match="must be a string")
    fails("format", "{0:Q}", 1, match="not supported")
