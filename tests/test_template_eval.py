"""Evaluating expressions: property access and indexing (case-insensitive, as ARM), lazy
arguments, property copy loops, and errors naming the JSON path, with secure values redacted."""
from __future__ import annotations

import pytest

from controller.template.errors import TemplateError
from controller.template.evaluator import Context, Scope, expression, redact, value
from controller.template.template import Environment

ENV = Environment("sub1", "rg1", "local", "dep1")
PARAMS = {"obj": {"Name": "web", "list": [10, 20, {"deep": "x"}]}, "count": 3}


def scope(path: str = "resources[0].properties.x", secrets: list | None = None) -> Scope:
    def parameter(name: str):
        from controller.template.errors import FunctionError
        for k, v in PARAMS.items():
            if k.lower() == name.lower():
                return v
        raise FunctionError(f"The template parameter '{name}' is not found")
    ctx = Context(ENV, parameter=parameter, variable=lambda n: None, secrets=secrets or [])
    return Scope(ctx, path=path)


def test_property_access_and_indexing_are_case_insensitive():
    assert expression("[parameters('OBJ').name]", scope()) == "web"
    assert expression("[parameters('obj')['NAME']]", scope()) == "web"
    assert expression("[parameters('obj').list[2].DEEP]", scope()) == "x"
    assert expression("[parameters('obj').list[1]]", scope()) == 20


def test_literal_strings_and_escapes_are_not_evaluated():
    assert expression("[[parameters('obj')]", scope()) == "[parameters('obj')]"
    assert expression("just text", scope()) == "just text"
    assert expression("[true]", scope()) is True and expression("[null()]", scope()) is None


@pytest.mark.parametrize("text, problem", [
    ("[parameters('nope')]", "The template parameter 'nope' is not found"),
    ("[parameters('obj').missing]", "property 'missing' doesn't exist, available properties are 'Name, list'"),
    ("[parameters('obj').list[3]]", "out of bounds"),
    ("[parameters('obj').list['a']]", "indexed by an integer"),
    ("[parameters('count').x]", "cannot be read from a value of type Integer"),
    ("[nosuchfunction()]", "'nosuchfunction' is not valid"),
    ("[concat('a']", "expected ')'"),
])
def test_errors_name_the_path_and_the_expression(text, problem):
    with pytest.raises(TemplateError) as e:
        expression(text, scope())
    assert e.value.code == "InvalidTemplate" and e.value.field == "resources[0].properties.x"
    assert problem in e.value.reason and text in e.value.reason


def test_lazy_if_evaluates_only_the_branch_taken():
    assert expression("[if(equals(1, 1), 'yes', parameters('nope'))]", scope()) == "yes"


def test_values_are_evaluated_recursively_with_their_paths():
    body = {"a": ["[parameters('count')]", {"b": "[[x]"}], "[[key]": 1}
    assert value(body, scope("resources[1]")) == {"a": [3, {"b": "[x]"}], "[key]": 1}
    with pytest.raises(TemplateError) as e:
        value({"a": [1, {"b": "[parameters('nope')]"}]}, scope("resources[1]"))
    assert e.value.field == "resources[1].a[1].b"


def test_property_copy_loops():
    body = {"dataDisks": {"copy": [{"name": "disks", "count": "[parameters('count')]",
                                    "input": {"lun": "[copyIndex('disks')]", "diskSizeGB": 1023}}]}}
    out = value(body, scope("resources[0].properties"))
    assert out == {"dataDisks": {"disks": [{"lun": i, "diskSizeGB": 1023} for i in range(3)]}}
    with pytest.raises(TemplateError, match="copy count must be between 0 and 800") as e:
        value({"copy": [{"name": "d", "count": 900, "input": 1}]}, scope("resources[0].properties"))
    assert e.value.field == "resources[0].properties.copy[0].count"


def test_secure_values_are_redacted_from_errors():
    with pytest.raises(TemplateError) as e:
        expression("[int('hunter2secret')]", scope(secrets=["hunter2secret"]))
    assert "hunter2secret" not in str(e.value) and "***" in str(e.value)
    assert redact("a pw and pw2", ["pw", "pw2"]) == "a *** and ***"
