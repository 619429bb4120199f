"""Properties of the model's parser and `--set`: any input gives a model or a ModelError, nothing
else (no TypeError, KeyError, RecursionError...); what parses round-trips."""
from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.errors import ModelError
from controller.model.jsonmap import load_json
from controller.model.scaleset import ScaleSet, parse
from controller.model.setpath import set_path
from tests.bad_model_corpus import DELETE, VALID, health_model, nested

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False) | st.text(max_size=20)
           | st.sampled_from(["", "latest", "1.0.0", "PT5M", "/", "@127.0.0.1:1/x", "web\n", "Rolling", "http"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=30)


def paths(doc, prefix=()) -> list[tuple]:
    """Every path into `doc` (keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def put(doc, path: tuple, value):
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BASES = [VALID, health_model()]
mutations = st.integers(0, 1).flatmap(lambda b: st.tuples(
    st.just(BASES[b]), st.sampled_from(paths(BASES[b])), json_values | st.just(DELETE)))


def parses_or_model_error(doc) -> ScaleSet | None:
    try:
        return parse(doc)
    except ModelError as exc:
        assert exc.field and exc.reason
        return None


@FAST
@given(json_values)
def test_any_json_gives_a_model_or_a_model_error(doc):
    parses_or_model_error(doc)


@FAST
@given(mutations)
def test_a_mutated_model_parses_or_names_the_field_and_what_parses_round_trips(case):
    base, path, value = case
    ss = parses_or_model_error(put(base, path, value))
    if ss is not None:
        again = parse(json.loads(json.dumps(ss.to_json())))
        assert again == ss and parse(again.to_json()) == ss


@FAST
@given(st.integers(0, 1), st.integers(1, 100_000))
def test_deep_free_form_values_are_refused_without_recursion(base, depth):
    """protectedSettings.x sits at level 9 of the document: 64 levels in all are allowed."""
    doc = put(BASES[base], ("properties", "virtualMachineProfile", "extensionProfile", "extensions", 0,
                            "properties", "protectedSettings"), {"x": nested(depth)})
    ss = parses_or_model_error(doc)
    assert (ss is None) == (depth > 64 - 8)


def test_the_valid_models_round_trip():
    for doc in BASES:
        ss = parse(copy.deepcopy(doc))
        assert parse(json.loads(json.dumps(ss.to_json()))) == ss


def _set(path: str, raw: str) -> None:
    doc = copy.deepcopy(VALID)
    try:
        out = set_path(doc, f"{path}={raw}")
    except ModelError as exc:
        assert exc.field == "--set"
        return
    assert isinstance(out, dict)
    parses_or_model_error(out)


@FAST
@given(st.text(max_size=60), json_values.map(json.dumps) | st.text(max_size=20))
def test_set_path_gives_a_dict_or_a_model_error(path, raw):
    _set(path, raw)


@FAST
@given(st.lists(st.sampled_from(["properties", "sku", "name", "capacity", "x", "dataDisks", "[0]", "[1]", "[9]",
                                 "[", "]", ".", "..", "=", "-", "[-1]", "\n", "é"]), max_size=8),
       st.sampled_from(["1", "-1", '"s"', "[]", "{}", "null", "x"]))
def test_set_path_on_path_like_strings(parts, raw):
    _set("".join(parts), raw)


@FAST
@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_load_json_gives_json_or_a_model_error(text):
    try:
        load_json(text, "--model")
    except ModelError as exc:
        assert exc.field == "--model"


def test_set_path_semantics():
    doc = {"a": {"l": [{"v": 1}, 2]}, "s": "str"}
    assert set_path(doc, "a.l[0].v=5")["a"]["l"][0] == {"v": 5}
    assert set_path(doc, "a.l[1]={\"k\": true}")["a"]["l"][1] == {"k": True}
    assert set_path(doc, "a.new.deeper=x")["a"]["new"] == {"deeper": "x"}  # objects on the way are made
    assert set_path(doc, "s=[not json")["s"] == "[not json"  # not JSON: a string, as az does
    for bad in ("s.x=1", "a.l[2]=1", "a.l[0][0]=1", "a.b[0]=1", "a[0]=1", "a.l.x=1", "=1", ".=1", "a..l=1",
                "a.l[-1]=1", "a.l[x]=1", "a.l[01]=1", "tags[0]=x", "a=" + "[" * 5000):
        before = json.dumps(doc)
        try:
            set_path(doc, bad)
        except ModelError as exc:
            assert exc.field == "--set"
        else:
            raise AssertionError(f"{bad!r} was accepted")
        assert json.dumps(doc) == before
