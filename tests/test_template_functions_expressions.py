"""The general functions through the expression evaluator: the reference's examples written as
template expressions, lazy arguments, and a function's error as InvalidTemplate naming the path."""
from __future__ import annotations

import uuid

import pytest

from controller.template.errors import FunctionError, TemplateError
from controller.template.evaluator import Context, Scope, expression
from controller.template.template import Environment

ENV = Environment("00000000-0000-0000-0000-000000000000", "my-rg", "local", "dep1")


def scope() -> Scope:
    def parameter(name: str):
        raise FunctionError(f"The template parameter '{name}' is not found")
    return Scope(Context(ENV, parameter=parameter, variable=lambda n: None, secrets=[]),
                 path="resources[0].properties.x")


@pytest.mark.parametrize("text, expected", [
    ("[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]",
     "Hello, User. Formatted number: 8,175,133"),
    ("[concat('prefix', '-', uniqueString('test'))]", "prefix-rbgf3xv4ufgzg"),
    ("[toUpper(last(split('one,two,three', ',')))]", "THREE"),
    ("[if(greater(length(createArray(1, 2, 3)), 2), 'many', 'few')]", "many"),
    ("[json('{\"a\": [1, 2]}').a[1]]", 2),
    ("[union(createObject('a', 1), json('{''b'': 2}'))]", {"a": 1, "b": 2}),
    ("[string(createObject('valueA', 10, 'valueB', 'Example Text'))]", '{"valueA":10,"valueB":"Example Text"}'),
    ("[padLeft(string(add(mul(5, 3), mod(7, 3))), 5, '0')]", "00016"),
    ("[base64ToString(base64('one, two, three'))]", "one, two, three"),
    ("[cidrSubnet(concat(parseCidr('10.144.0.0/20').network, '/20'), 24, 2)]", "10.144.2.0/24"),
    ("[div(-7, 2)]", -3),
    ("[contains(createObject('One', 1), 'one')]", True),
    ("[coalesce(null(), '', 'x')]", ""),
])
def test_reference_examples_as_expressions(text, expected):
    assert expression(text, scope()) == expected


def test_unique_string_and_guid_of_the_resource_group_id():
    rg = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg"
    assert expression("[uniqueString(resourceGroup().id)]", scope()) == "bmg7c6xu4tw46"
    assert expression("[guid(resourceGroup().id, 'a')]", scope()) == \
        str(uuid.uuid5(uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830"), rg + "-a"))


def test_and_or_if_leave_the_other_arguments_alone():
    assert expression("[and(false(), parameters('nope'))]", scope()) is False
    assert expression("[or(true(), parameters('nope'))]", scope()) is True
    assert expression("[if(false(), parameters('nope'), 'no')]", scope()) == "no"


@pytest.mark.parametrize("text, problem", [
    ("[substring('hello', 1, 11)]", "the length parameter: '11'"),
    ("[div(1, 0)]", "division by zero"),
    ("[add(9223372036854775807, 1)]", "overflows a 64-bit integer"),
    ("[toLower('a', 'b')]", "takes 1 argument(s), got 2"),
    ("[int('one')]", "cannot be converted to an integer"),
    ("[json('{')]", "not valid JSON"),
])
def test_a_function_error_is_invalid_template_naming_the_path(text, problem):
    with pytest.raises(TemplateError) as e:
        expression(text, scope())
    assert e.value.code == "InvalidTemplate" and e.value.field == "resources[0].properties.x"
    assert problem in e.value.reason
