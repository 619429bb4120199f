"""String functions against the examples of Azure's reference ("String functions for ARM
templates") and their errors."""
from __future__ import annotations

import pytest

from tests.templatefns import call, fails


def test_concat_strings_and_arrays():
    assert call("concat", "prefix", "-", "abc123") == "prefix-abc123"
    assert call("concat", ["1-1", "1-2", "1-3"], ["2-1", "2-2", "2-3"]) == \
        ["1-1", "1-2", "1-3", "2-1", "2-2", "2-3"]
    assert call("CONCAT", "a", 1, True, None) == "a1True"
    fails("concat", "a", ["b"], match="all arrays")
    fails("concat", match="at least 1")


def test_string_prints_compact_json_as_arm():
    assert call("string", {"valueA": 10, "valueB": "Example Text"}) == '{"valueA":10,"valueB":"Example Text"}'
    assert call("string", ["a", "b", "c"]) == '["a","b","c"]'
    assert call("string", 5) == "5"
    assert call("string", {"b": True, "n": None, "é": "ü"}) == '{"b":true,"n":null,"é":"ü"}'
    assert call("string", True) == "True"  # .NET's Boolean.ToString()


def test_case_and_trim():
    assert call("toLower", "One Two Three") == "one two three"
    assert call("toUpper", "One Two Three") == "ONE TWO THREE"
    assert call("trim", "    one two three   ") == "one two three"
    fails("toLower", 2, match="must be a string, not Integer")
    fails("trim", "a", "b", match="takes 1 argument")


def test_pad_left():
    assert call("padLeft", "123", 10, "0") == "0000000123"
    assert call("padLeft", "123", 10) == "       123"
    assert call("padLeft", 123, 5, "x") == "xx123"
    assert call("padLeft", "toolong", 3) == "toolong"
    fails("padLeft", "1", 3, "ab", match="one character")
    fails("padLeft", "1", -1, match="total length")


def test_replace():
    assert call("replace", "123-123-1234", "-", "") == "1231231234"
    assert call("replace", "123-123-1234", "1234", "xxxx") == "123-123-xxxx"
    assert call("replace", "This is a Test", "test", "unit") == "This is a Test"  # case-sensitive
    fails("replace", "abc", "", "x", match="must not be empty")


def test_substring_and_its_out_of_range_errors():
    assert call("substring", "one two three", 4, 3) == "two"
    assert call("substring", "This is a test", 10) == "test"
    assert call("substring", "abc", 3) == ""
    msg = fails("substring", "hello", 1, 11)
    assert "The index parameter: '1', the length parameter: '11', the length of the string parameter: '5'" in msg
    fails("substring", "hello", -1, 2, match="index and length")
    fails("substring", "hello", 6, match="index parameter '6'")
    fails("substring", "hello", "1", match="must be an integer")


def test_split():
    assert call("split", "one,two,three", ",") == ["one", "two", "three"]
    assert call("split", "one;two,three", [",", ";"]) == ["one", "two", "three"]
    assert call("split", "a,,b", ",") == ["a", "", "b"]
    assert call("split", "abc", "") == ["abc"]
    fails("split", "a", 1, match="string or an array")
    fails("split", "a", [1], match="delimiter 1")


def test_join():
    assert call("join", ["one", "two", "three"], ",") == "one,two,three"
    assert call("join", [], ";") == ""
    fails("join", ["a", 1], ",", match="element 1")


def test_starts_and_ends_with_ignore_case():
    assert call("startsWith", "abcdef", "ab") is True
    assert call("startsWith", "abcdef", "A") is True
    assert call("startsWith", "abcdef", "e") is False
    assert call("endsWith", "abcdef", "ef") is True
    assert call("endsWith", "abcdef", "F") is True
    assert call("endsWith", "abcdef", "e") is False


def test_index_of_and_last_index_of():
    assert call("indexOf", "test", "t") == 0
    assert call("indexOf", "abcdef", "CD") == 2
    assert call("indexOf", "abcdef", "z") == -1
    assert call("lastIndexOf", "test", "t") == 3
    assert call("lastIndexOf", "abcdef", "AB") == 0
    assert call("lastIndexOf", "abcdef", "z") == -1
    assert call("indexOf", ["a", 1, {"x": 2}, 1], 1) == 1
    assert call("lastIndexOf", ["a", 1, {"x": 2}, 1], 1) == 3
    assert call("indexOf", [{"x": 2}], {"x": 2}) == 0
    fails("indexOf", 0, 0, match="must be a string")


@pytest.mark.parametrize("name", ["concat", "toLower", "substring", "split", "padLeft"])
def test_names_are_case_insensitive(name):
    from controller.template import functions
    assert functions.lookup(name.upper()) is functions.lookup(name)


def test_uri():
    assert call("uri", "http://contoso.org/firstpath", "myscript.sh") == "http://contoso.org/myscript.sh"
    assert call("uri", "http://contoso.org/firstpath/", "myscript.sh") == "http://contoso.org/firstpath/myscript.sh"
    assert call("uri", "http://contoso.org/firstpath/azuredeploy.json", "myscript.sh") == \
        "http://contoso.org/firstpath/myscript.sh"
    assert call("uri", "http://contoso.org/firstpath/azuredeploy.json/", "myscript.sh") == \
        "http://contoso.org/firstpath/azuredeploy.json/myscript.sh"
    fails("uri", "relative/path", "x", match="not an absolute URI")
    fails("uri", "http://contoso.org/", 2, match="must be a string")
