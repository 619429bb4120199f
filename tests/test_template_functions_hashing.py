"""uniqueString and guid give Azure's own values. The expected values come from implementations
checked against Azure's (Azure.Deployments.Expression's uniqueString of 'test' is
rbgf3xv4ufgzg; guid('test') is d6a5baf1-8b9b-542a-8525-2982f1f98a0c); several arguments are
joined with '-' before hashing, as Azure's expression engine does."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.templatefns import call, fails


@pytest.mark.parametrize("args, expected", [
    (("test",), "rbgf3xv4ufgzg"),
    (("hello", "world"), "a7wkljktk6wne"),
    (("abc",), "cgtzqvhu4i23s"),
    (("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg",), "bmg7c6xu4tw46"),
    (("foo", "bar", "baz"), "xzi4ioaxtmth4"),
])
def test_unique_string_is_azures(args, expected):
    assert call("uniqueString", *args) == expected


def test_unique_string_joins_with_a_dash_and_is_case_sensitive():
    assert call("uniqueString", "hello", "world") == call("uniqueString", "hello-world")
    assert call("uniqueString", "ABC") != call("uniqueString", "abc")
    for n in range(0, 20):  # every tail length of the 8-byte blocks
        assert re.fullmatch(r"[a-z2-7]{13}", call("uniqueString", "x" * n or "-"))
    fails("uniqueString", "One", 2, "Three", match="argument 2 must be a string")
    fails("uniqueString", match="at least 1")


def test_guid_is_azures():
    assert call("guid", "test") == "d6a5baf1-8b9b-542a-8525-2982f1f98a0c"
    assert call("guid", "test", "test2", "test3") == call("guid", "test-test2-test3")
    value = uuid.UUID(call("guid", "abc", "efg"))
    assert value.version == 5 and value.variant == uuid.RFC_4122
    assert call("guid", "abc") != call("guid", "abc", "efg")
    fails("guid", 1, match="must be a string")


def test_new_guid_is_random_v4():
    a, b = call("newGuid"), call("newGuid")
    assert a != b and uuid.UUID(a).version == 4
    fails("newGuid", "x", match="takes 0")
