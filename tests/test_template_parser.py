"""Expressions `[...]` parsed as ARM parses them, and JSON with comments as ARM reads it."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.template import jsonc
from controller.template.errors import FunctionError, TemplateError
from controller.template.parser import Call, Index, Lit, Member, is_expression, parse


def test_literals_escapes_and_expressions():
    assert parse("plain text") == Lit("plain text")
    assert parse("[[not evaluated]") == Lit("[not evaluated]")
    assert not is_expression("[[x]") and is_expression("[x()]") and not is_expression("[x") and not is_expression("a]")
    assert parse("[concat('it''s', -12, 7)]") == Call("concat", (Lit("it's", 8), Lit(-12, 17), Lit(7, 22)), 1)


def test_property_access_and_indexing_nest():
    tree = parse("[providers('Microsoft.Compute','virtualMachineScaleSets').apiVersions[0]]")
    assert isinstance(tree, Index) and tree.index.value == 0
    assert isinstance(tree.target, Member) and tree.target.name == "apiVersions"
    assert tree.target.target.name == "providers" and len(tree.target.target.args) == 2
    tree = parse("[ reference( 'x' ) [ 'a' ] .b ]")
    assert isinstance(tree, Member) and tree.name == "b" and isinstance(tree.target, Index)


def test_bare_booleans_and_null():
    assert parse("[if(true, false, null)]").args == (Lit(True, 4), Lit(False, 10), Lit(None, 17))
    assert parse("[true()]") == Call("true", (), 1)


@pytest.mark.parametrize("text, problem", [
    ("[concat('a']", "expected ')'"),
    ("[concat('a)]", "not closed"),
    ("[]", "empty"),
    ("[foo]", "expected '('"),
    ("[1.5]", "decimal"),
    ("[a().]", "property name"),
    ("[a() b()]", "unexpected 'b'"),
    ("[a(,)]", "found ','"),
    ("[-]", "digits"),
    ("[99999999999999999999]", "64-bit"),
])
def test_syntax_errors_name_the_position(text, problem):
    with pytest.raises(FunctionError, match=re.escape(problem)) as e:
        parse(text)
    assert "position" in str(e.value) or problem == "empty"


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(FunctionError, match="nested too deeply"):
        parse("[" + "a(" * 200 + ")" * 200 + "]")


def test_jsonc_comments_outside_strings_and_trailing_commas():
    text = '{\n  // a comment\n  "a": "http://x/*y*/", /* block\n comment */ "b": [1, 2,],\n}'
    assert jsonc.loads(text) == {"a": "http://x/*y*/", "b": [1, 2]}
    assert jsonc.loads(b'\xef\xbb\xbf{"a": "\\"//"}') == {"a": '"//'}
    assert jsonc.loads('{"a": "x,]"}') == {"a": "x,]"}


@pytest.mark.parametrize("text, where", [
    ('{\n  "a": 1\n  "b": 2}', "line 3 column 3"),
    ('{"a": /* open', "line 1 column 7"),
    ('{"a": NaN}', "NaN"),
    ('{"a": [1,,2]}', "line 1 column 10"),
])
def test_jsonc_errors_name_line_and_column(text, where):
    with pytest.raises(TemplateError, match=where) as e:
        jsonc.loads(text, field="properties.template")
    assert e.value.code == "InvalidTemplate" and e.value.field == "properties.template"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="[]()'.,-0123456789abtrue_ ", max_size=40))
def test_any_expression_text_parses_or_is_a_function_error(text):
    try:
        parse(text)
    except FunctionError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]",:/*\n 1ab\\', max_size=40))
def test_any_body_text_loads_or_is_a_template_error(text):
    try:
        jsonc.loads(text)
    except TemplateError:
        pass


def test_deeply_nested_templates_are_refused_cleanly():
    from controller.template.template import Environment, prepare
    deep: dict = {"x": 1}
    for _ in range(5000):
        deep = {"a": deep}
    t = {"resources": [{"type": "Microsoft.X/y", "name": "n", "apiVersion": "1", "properties": deep}]}
    env = Environment("s", "g", "l", "d")
    with pytest.raises(TemplateError, match="nested too deeply"):
        prepare(t, {}, env).resources[0].evaluate(env)
