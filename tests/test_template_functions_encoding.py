"""Encoding functions (Azure's reference, "String functions"): base64, URI components, data URIs."""
from __future__ import annotations

from tests.templatefns import call, fails


def test_base64_round_trips():
    assert call("base64", "one, two, three") == "b25lLCB0d28sIHRocmVl"
    assert call("base64ToString", "b25lLCB0d28sIHRocmVl") == "one, two, three"
    assert call("base64", "{'one': 'a', 'two': 'b'}") == "eydvbmUnOiAnYScsICd0d28nOiAnYid9"
    assert call("base64ToJson", "eydvbmUnOiAnYScsICd0d28nOiAnYid9") == {"one": "a", "two": "b"}
    assert call("base64ToString", call("base64", "é ✓")) == "é ✓"
    fails("base64", 1, match="must be a string")
    fails("base64ToString", "not base64!", match="not valid base64")
    fails("base64ToString", "//8=", match="not valid base64")  # not UTF-8


def test_uri_component():
    assert call("uriComponent", "http://contoso.com/resources/nested/azuredeploy.json") == \
        "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json"
    assert call("uriComponentToString", "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json") == \
        "http://contoso.com/resources/nested/azuredeploy.json"
    assert call("uriComponent", "a b~_.-é") == "a%20b~_.-%C3%A9"
    fails("uriComponent", 2, match="must be a string")


def test_data_uri():
    assert call("dataUri", "Hello") == "data:text/plain;charset=utf8;base64,SGVsbG8="
    assert call("dataUriToString", "data:;base64,SGVsbG8sIFdvcmxkIQ==") == "Hello, World!"
    assert call("dataUriToString", "data:text/plain;charset=utf8;base64,SGVsbG8=") == "Hello"
    assert call("dataUriToString", "data:,Hello%2C%20World") == "Hello, World"
    fails("dataUriToString", "SGVsbG8sIFdvcmxkIQ==", match="not a data URI")
    fails("dataUriToString", "data:text/plain;charset=latin1,x", match="charset")
