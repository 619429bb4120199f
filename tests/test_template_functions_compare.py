"""Comparison functions (Azure's reference, "Comparison functions for ARM templates"): equals
deep and type-aware, the orderings on integers and strings, coalesce."""
from __future__ import annotations

import pytest

from tests.templatefns import call, fails


def test_equals():
    assert call("equals", 1, 1) is True
    assert call("equals", "a", "a") is True
    assert call("equals", ["a", "b"], ["a", "b"]) is True
    assert call("equals", {"a": "b"}, {"a": "b"}) is True
    assert call("equals", {"a": 1, "b": [1, {"c": None}]}, {"b": [1, {"c": None}], "a": 1}) is True
    assert call("equals", "a", "A") is False
    assert call("equals", 1, True) is False and call("equals", 0, False) is False
    assert call("equals", 1, "1") is False
    assert call("equals", [1, 2], [2, 1]) is False
    assert call("equals", {"a": 1}, {"a": 1, "b": 2}) is False
    assert call("equals", None, None) is True


@pytest.mark.parametrize("name, ints, strings", [
    ("less", True, False), ("lessOrEquals", True, False),
    ("greater", False, True), ("greaterOrEquals", False, True)])
def test_orderings_as_the_reference_shows(name, ints, strings):
    # the reference's examples: firstInt 1, secondInt 2; firstString 'A', secondString 'a'
    assert call(name, 1, 2) is ints
    assert call(name, "A", "a") is strings


def test_orderings_on_equal_and_other_values():
    assert call("lessOrEquals", 3, 3) is True and call("less", 3, 3) is False
    assert call("greaterOrEquals", "abc", "abc") is True
    assert call("less", "apple", "Banana") is True  # culture order: letters before case
    assert call("greater", -(2**63), 2**63 - 1) is False
    fails("less", 1, "2", match="two integers or two strings")
    fails("greater", True, False, match="two integers or two strings")


def test_coalesce():
    obj = {"null1": None, "null2": None, "string": "default", "int": 1, "object": {"first": "default"},
           "array": [1]}
    assert call("coalesce", obj["null1"], obj["null2"], obj["string"]) == "default"
    assert call("coalesce", obj["null1"], obj["null2"], obj["int"]) == 1
    assert call("coalesce", obj["null1"], obj["null2"], obj["object"]) == {"first": "default"}
    assert call("coalesce", obj["null1"], obj["null2"], obj["array"]) == [1]
    assert call("coalesce", obj["null1"], obj["null2"]) is None
    assert call("coalesce", None, "", "x") == ""  # an empty string is not null
    fails("coalesce", match="at least 1")
