"""Object functions against Azure's reference ("Object functions for ARM templates"): json
read as Newtonsoft reads it, createObject, items, tryGet, null."""
from __future__ import annotations

import pytest

from tests.templatefns import call, fails


def test_json():
    assert call("json", '{"a": "b"}') == {"a": "b"}
    assert call("json", "null") is None
    assert call("json", "true") is True
    assert call("json", '"demo"') == "demo"
    assert call("json", "[1, 2, 3]") == [1, 2, 3]
    assert call("json", "{'one': 'a', 'two': 'b'}") == {"one": "a", "two": "b"}  # Newtonsoft's leniency
    assert call("json", "{bare: 1, /* c */ 'x': [true] // end\n}") == {"bare": 1, "x": [True]}
    assert call("json", '"\\u00e9\\ud83d\\ude00\\n"') == "é😀\n"


@pytest.mark.parametrize("text", ["", "{", "{'a' 1}", "[1,]x", "tru", "1 2", "'open", "{'a':1}}",
                                  "99999999999999999999", "[" * 70 + "]" * 70])
def test_json_refuses_what_newtonsoft_refuses(text):
    fails("json", text, match="not valid JSON")


def test_json_wants_a_string():
    fails("json", 1, match="must be a string")


def test_create_object():
    assert call("createObject", "intProp", 1, "stringProp", "abc", "boolProp", True,
                "arrayProp", ["a", "b", "c"], "objectProp", {"key1": "value1"}) == \
        {"intProp": 1, "stringProp": "abc", "boolProp": True, "arrayProp": ["a", "b", "c"],
         "objectProp": {"key1": "value1"}}
    assert call("createObject") == {}
    fails("createObject", "intProp", 1, "stringProp", match="key and value pairs")
    fails("createObject", 1, 2, match="must be a string")
    fails("createObject", "a", 1, "a", 2, match="given twice")


def test_null():
    assert call("null") is None
    fails("null", 1, match="takes 0")


def test_items_sorts_by_key():
    assert call("items", {"item002": {"enabled": False, "displayName": "Example item 2", "number": 200},
                          "item001": {"enabled": True, "displayName": "Example item 1", "number": 300}}) == [
        {"key": "item001", "value": {"enabled": True, "displayName": "Example item 1", "number": 300}},
        {"key": "item002", "value": {"enabled": False, "displayName": "Example item 2", "number": 200}}]
    fails("items", [1], match="must be an object")


def test_try_get():
    obj = {"region": "westus", "nested": {"list": [10, 20]}}
    assert call("tryGet", obj, "region") == "westus"
    assert call("tryGet", obj, "REGION") == "westus"
    assert call("tryGet", {"True": 1, "true": 2}, "true") == 2  # the exact name first
    assert call("tryGet", obj, "name") is None
    assert call("tryGet", obj, "nested", "list", 1) == 20
    assert call("tryGet", obj, "nested", "list", 5) is None
    assert call("tryGet", obj, "missing", "deeper") is None
    fails("tryGet", obj, "region", True, match="string or an integer")


def test_object_keys_and_shallow_merge():
    assert call("objectKeys", {"a": 1, "b": 2}) == ["a", "b"]
    assert call("shallowMerge", [{"one": "a", "nested": {"x": 1}}, {"two": "b", "nested": {"y": 2}}]) == \
        {"one": "a", "nested": {"y": 2}, "two": "b"}
    fails("objectKeys", [1], match="must be an object")
    fails("shallowMerge", [{"a": 1}, 2], match="element 1 must be an object")
