"""Template errors: `InvalidTemplate` naming the JSON path (`resources[2].properties.x`) and the
problem. Functions raise FunctionError; the evaluator adds the path and the expression."""
from __future__ import annotations

from controller.core.errors import LabError


class TemplateError(LabError):
    """A template, a parameter or an expression that ARM would refuse (field: the JSON path)."""

    default_code = "InvalidTemplate"


class FunctionError(Exception):
    """Raised by a template function: what is wrong with its arguments (no path: the caller adds it)."""
