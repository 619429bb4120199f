"""Array functions against the examples of Azure's reference ("Array functions for ARM
templates", "Object functions") and their errors."""
from __future__ import annotations

from tests.templatefns import call, fails


def test_array_and_create_array():
    assert call("array", 1) == [1]
    assert call("array", "efgh") == ["efgh"]
    assert call("array", {"a": "b", "c": "d"}) == [{"a": "b", "c": "d"}]
    assert call("array", [1, 2]) == [1, 2]
    assert call("createArray", "a", "b", "c") == ["a", "b", "c"]
    assert call("createArray", 1, 2, 3) == [1, 2, 3]
    assert call("createArray", {"one": "a"}, ["one", "two"]) == [{"one": "a"}, ["one", "two"]]
    assert call("createArray") == []
    fails("array", match="takes 1 argument")


def test_length_and_empty():
    assert call("length", ["one", "two", "three"]) == 3
    assert call("length", "One Two Three") == 13
    assert call("length", {"propA": "one", "propB": "two", "propC": "three", "propD": {"a": 1, "b": 2}}) == 4
    assert call("empty", []) is True and call("empty", [{}]) is False
    assert call("empty", {}) is True and call("empty", {"a": 1}) is False
    assert call("empty", "") is True and call("empty", "x") is False
    assert call("empty", None) is True
    fails("length", 5, match="not Integer")
    fails("empty", True, match="not Boolean")


def test_contains_string_object_array():
    assert call("contains", "OneTwoThree", "e") is True
    assert call("contains", "OneTwoThree", "z") is False
    assert call("contains", "OneTwoThree", "one") is False  # strings: case-sensitive
    assert call("contains", {"one": "a", "two": "b", "three": "c"}, "one") is True
    assert call("contains", {"one": "a"}, "ONE") is True  # keys: case-insensitive
    assert call("contains", {"one": "a"}, "a") is False
    assert call("contains", ["one", "two", "three"], "three") is True
    assert call("contains", ["one", "two", "three"], "four") is False
    assert call("contains", [1, 2], "1") is False and call("contains", [1, True], True) is True
    assert call("contains", [0], False) is False  # types count: 0 is not false
    assert call("contains", "abc1", 1) is True
    fails("contains", 5, 5, match="argument 1")


def test_first_last():
    assert call("first", ["one", "two", "three"]) == "one"
    assert call("first", "One Two Three") == "O"
    assert call("last", ["one", "two", "three"]) == "three"
    assert call("last", "One Two Three") == "e"
    assert call("first", []) is None and call("last", "") == ""
    fails("first", 3, match="must be a string")


def test_take_and_skip():
    assert call("take", ["one", "two", "three"], 2) == ["one", "two"]
    assert call("take", "one two three", 2) == "on"
    assert call("skip", ["one", "two", "three"], 2) == ["three"]
    assert call("skip", "one two three", 4) == "two three"
    assert call("take", [1], 5) == [1] and call("skip", [1], 5) == []
    assert call("take", [1, 2], -1) == [] and call("skip", [1, 2], -1) == [1, 2]
    fails("take", {"a": 1}, 1, match="array or a string")
    fails("skip", [1], "1", match="must be an integer")


def test_range():
    assert call("range", 1, 3) == [1, 2, 3]
    assert call("range", 5, 0) == []
    assert len(call("range", 3, 10)) == 10 and call("range", 3, 10)[-1] == 12
    fails("range", 1, 10001, match="0 to 10000")
    fails("range", 1, -1, match="0 to 10000")
    fails("range", 2**31 - 1, 2, match="no greater than")
    fails("range", "1", 2, match="must be an integer")


def test_union():
    assert call("union", {"one": "a", "two": "b", "three": "c1"}, {"three": "c2", "four": "d", "five": "e"}) == \
        {"one": "a", "two": "b", "three": "c2", "four": "d", "five": "e"}
    assert call("union", ["one", "two", "three"], ["three", "four"]) == ["one", "two", "three", "four"]
    # nested objects merge; nested arrays do not (the reference's deep-merge example)
    assert call("union", {"property": {"one": "a", "two": "b", "three": "c1"}, "nestedArray": [1, 2]},
                {"property": {"three": "c2", "four": "d", "five": "e"}, "nestedArray": [3, 4]}) == \
        {"property": {"one": "a", "two": "b", "three": "c2", "four": "d", "five": "e"}, "nestedArray": [3, 4]}
    assert call("union", [["one", "two"], ["three"]], [["three"], ["four", "two"]]) == \
        [["one", "two"], ["three"], ["four", "two"]]
    assert call("union", {"Name": 1}, {"name": 2}) == {"Name": 2}
    fails("union", [1], {"a": 1}, match="all arrays or all objects")
    fails("union", [1], match="takes at least 2")


def test_intersection():
    assert call("intersection", {"one": "a", "two": "b", "three": "c"}, {"one": "a", "two": "z", "three": "c"}) == \
        {"one": "a", "three": "c"}
    assert call("intersection", ["one", "two", "three"], ["two", "three"]) == ["two", "three"]
    assert call("intersection", [1, 1, 2], [1], [1, 3]) == [1]
    fails("intersection", "one", "two", match="all arrays or all objects")


def test_flatten():
    assert call("flatten", [["one", "two"], ["three"], ["four", "five"]]) == ["one", "two", "three", "four", "five"]
    assert call("flatten", [[1, [2]], []]) == [1, [2]]
    fails("flatten", [[1], 2], match="element 1 must be an array")
