"""Logical functions: if evaluates only the branch it takes, and/or stop at the first argument
that decides, bool reads what ARM reads (Azure's reference, "Logical functions")."""
from __future__ import annotations

import pytest

from controller.template import functions
from controller.template.errors import FunctionError
from tests.templatefns import call, fails


def boom():
    raise AssertionError("evaluated an argument that should have been left alone")


def lazy(name, *thunks):
    return functions.lookup(name).fn(*thunks)


def test_if_evaluates_only_the_branch_taken():
    assert call("if", True, 1, 2) == 1
    assert call("if", False, {"a": 1}, "no") == "no"
    assert lazy("if", lambda: True, lambda: "yes", boom) == "yes"
    assert lazy("if", lambda: False, boom, lambda: "no") == "no"
    fails("if", "true", 1, 2, match="must be a boolean, not String")
    fails("if", True, 1, match="takes 3")


def test_and_or_short_circuit():
    assert call("and", True, True) is True
    assert call("and", True, False, True) is False
    assert call("or", False, False) is False
    assert call("or", False, True) is True
    assert lazy("and", lambda: False, boom) is False
    assert lazy("or", lambda: True, boom) is True
    fails("and", True, 1, match="argument 2 must be a boolean")
    fails("or", True, match="takes at least 2")


def test_not_true_false():
    assert call("not", True) is False and call("not", False) is True
    assert call("true") is True and call("false") is False
    fails("not", 0, match="must be a boolean")
    fails("true", 1, match="takes 0")


@pytest.mark.parametrize("value, expected", [
    ("true", True), ("false", False), ("True", True), ("FALSE", False), (0, False), (1, True),
    (True, True), (False, False)])
def test_bool(value, expected):
    assert call("bool", value) is expected


@pytest.mark.parametrize("value", ["yes", "", "1", None, [True], 1.5])
def test_bool_refuses(value):
    with pytest.raises(FunctionError, match="not a boolean"):
        call("bool", value)
