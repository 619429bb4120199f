"""`format()`: .NET's composite formatting (`{0}`, `{1,-8}`, `{2:N0}`, `{{`), invariant culture,
as ARM applies it: arrays and objects print as compact JSON with single quotes, booleans as
`True`/`False`, null as nothing. Integers take the standard specifiers C D E F G N P R X (with a
precision) and the custom digit patterns of `0`, `#`, `,` and `.`."""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function
from controller.template.functions._common import bounded, is_int, text, to_json

_BAD = "format: the format string is not in a correct format"
_CUSTOM = re.compile(r"^([0#,]*)(?:\.([0#]*))?$")


@function("format", 1, None)
def format_(fmt: Any, *args: Any) -> str:
    """`format(formatString, arg1, ...)`."""
    fmt = Arg.str("format", fmt, 0)
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "}":
            if fmt[i + 1:i + 2] != "}":
                raise FunctionError(_BAD)
            out.append("}")
            i += 2
        elif c == "{":
            if fmt[i + 1:i + 2] == "{":
                out.append("{")
                i += 2
                continue
            end = fmt.find("}", i)
            if end < 0:
                raise FunctionError(_BAD)
            out.append(_item(fmt[i + 1:end], args))
            i = end + 1
        else:
            out.append(c)
            i += 1
    return bounded("format", "".join(out))


def _item(spec: str, args: tuple) -> str:
    m = re.fullmatch(r"\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?(?::(.*))?", spec, re.S)
    if not m:
        raise FunctionError(_BAD)
    index = int(m.group(1))
    if index >= len(args):
        raise FunctionError(f"format: the format item {{{index}}} has no argument "
                            f"(the index must be less than {len(args)})")
    value = _value(args[index], m.group(3) or "")
    width = int(m.group(2) or 0)
    if abs(width) > 10000:
        raise FunctionError(_BAD)
    return value.ljust(-width) if width < 0 else value.rjust(width)


def _value(value: Any, spec: str) -> str:
    if isinstance(value, (list, dict)):
        return to_json(value).replace('"', "'")
    if is_int(value) and spec:
        return number(value, spec)
    return text(value)


def number(n: int, spec: str) -> str:
    """The integer `n` under the .NET numeric format `spec` (invariant culture)."""
    with localcontext() as ctx:
        ctx.prec = 250  # 19 digits, times 100 for P, and up to 99 places
        return _number(n, spec)


def _number(n: int, spec: str) -> str:
    m = re.fullmatch(r"([CcDdEeFfGgNnPpRrXx])(\d{0,2})", spec)
    if not m:
        return _custom(n, spec)
    kind, digits = m.group(1), m.group(2)
    prec = int(digits) if digits else None
    k = kind.upper()
    if k == "D":
        body = str(abs(n)).rjust(prec or 0, "0")
        return "-" + body if n < 0 else body
    if k == "X":
        body = format(n & ((1 << 64) - 1) if n < 0 else n, "X" if kind == "X" else "x")
        return body.rjust(prec or 0, "0")
    if k == "R":
        return str(n)
    if k in "FN":
        return _fixed(Decimal(n), 2 if prec is None else prec, group=k == "N")
    if k == "C":
        body = "¤" + _fixed(Decimal(abs(n)), 2 if prec is None else prec, group=True)
        return f"({body})" if n < 0 else body
    if k == "P":
        return _fixed(Decimal(n) * 100, 2 if prec is None else prec, group=True) + " %"
    if k == "E":
        return _scientific(n, 6 if prec is None else prec, kind, exp_digits=3, trim=False)
    # G: the shortest exact form, or scientific when the precision is below the digit count
    if prec is None or prec == 0 or prec >= len(str(abs(n))):
        return str(n)
    return _scientific(n, prec - 1, "E" if kind == "G" else "e", exp_digits=2, trim=True)


def _fixed(d: Decimal, places: int, group: bool) -> str:
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) if places else \
        d.to_integral_value(rounding=ROUND_HALF_UP)
    sign = "-" if q < 0 else ""
    whole, _, frac = f"{abs(q):f}".partition(".")
    if group:
        whole = _group(whole)
    return sign + whole + ("." + frac.ljust(places, "0") if places else "")


def _scientific(n: int, places: int, letter: str, exp_digits: int, trim: bool) -> str:
    if n == 0:
        mant, exp = "0" + ("." + "0" * places if places and not trim else ""), 0
    else:
        d = Decimal(abs(n))
        exp = d.adjusted()
        scaled = (d.scaleb(-exp)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if scaled >= 10:
            exp += 1
            scaled = (d.scaleb(-exp)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        mant = f"{scaled:f}"
        if trim and "." in mant:
            mant = mant.rstrip("0").rstrip(".")
    sign = "-" if n < 0 else ""
    return f"{sign}{mant}{letter}{'+' if exp >= 0 else '-'}{str(abs(exp)).rjust(exp_digits, '0')}"


def _custom(n: int, spec: str) -> str:
    m = _CUSTOM.match(spec)
    if not m or not any(c in spec for c in "0#"):
        raise FunctionError(f"format: the numeric format '{spec[:40]}' is not supported")
    whole_pat, frac_pat = m.group(1), m.group(2) or ""
    sign = "-" if n < 0 else ""
    whole = str(abs(n))
    zeros = len(whole_pat.replace(",", "").replace("#", ""))
    whole = whole.rjust(zeros, "0")
    if whole == "0" and zeros == 0:
        whole = ""
    if "," in whole_pat.rstrip(",") and whole:
        whole = _group(whole)
    frac = "0" * frac_pat.count("0") if frac_pat.startswith("0") else ""
    return sign + whole + ("." + frac if frac else "")


def _group(digits: str) -> str:
    """Digits with a comma every three from the right."""
    head = len(digits) % 3 or 3
    return ",".join([digits[:head]] + [digits[i:i + 3] for i in range(head, len(digits), 3)])
