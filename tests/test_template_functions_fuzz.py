"""Every function of the table, given any JSON values of any arity, answers a value or a
FunctionError naming the problem: never another exception (the evaluator turns FunctionError
into InvalidTemplate; anything else would be a traceback)."""
from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.template import functions
from controller.template.errors import FunctionError
from tests.templatefns import call

GENERAL = ("arrays", "cidr", "compare", "encoding", "formatting", "hashing", "logic", "numbers", "objects", "strings")
NAMES = sorted(n for n, f in functions.FUNCTIONS.items()
               if not f.scope and f.fn.__module__.rsplit(".", 1)[-1] in GENERAL)
scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=12) | \
    st.sampled_from(["", "0", "1", "true", "{0}", "{0:N2}", "{0:N99}", "{0:E99}", "{0:X99}",
                     "{0:#,##0.0#}", "{1,-99999}", "{'a': 1}", "data:,x", "%E9", "SGk=", ",", "-"])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=8)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "600")), deadline=None)
@given(st.sampled_from(NAMES), st.lists(values, max_size=4))
def test_no_function_raises_anything_but_function_error(name, args):
    try:
        call(name, *args)
    except FunctionError as e:
        assert str(e)
