"""Calling the template function table directly, as the evaluator does: by name (any case),
arity checked, lazy functions given thunks."""
from __future__ import annotations

from typing import Any

import pytest

from controller.template import functions
from controller.template.errors import FunctionError

functions.load_all()


def call(name: str, *args: Any) -> Any:
    fn = functions.lookup(name)
    functions.check_arity(fn, len(args))
    if fn.lazy:
        return fn.fn(*[(lambda v=a: v) for a in args])
    return fn.fn(*args)


def fails(name: str, *args: Any, match: str | None = None) -> str:
    """The FunctionError message of the call (it must fail)."""
    with pytest.raises(FunctionError, match=match) as caught:
        call(name, *args)
    return str(caught.value)
