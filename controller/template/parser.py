"""ARM template expressions: a JSON string `[...]` parsed into a small tree.

A string that starts with `[` and ends with `]` is an expression; one that starts with `[[` is
the literal string with the first `[` dropped; any other string is literal. Inside: function
calls `name(args)`, string literals in single quotes (`''` is a quote), integers (negative too),
`true`/`false`/`null` (Bicep writes `true()`, older templates the bare words), property access
`.name` and indexing `[expr]`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from controller.template.errors import FunctionError


@dataclass(frozen=True)
class Lit:
    value: Any
    pos: int = 0


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Node", ...]
    pos: int = 0


@dataclass(frozen=True)
class Member:
    target: "Node"
    name: str
    pos: int = 0


@dataclass(frozen=True)
class Index:
    target: "Node"
    index: "Node"
    pos: int = 0


Node = Union[Lit, Call, Member, Index]
MAX_LENGTH = 64 * 1024  # ARM's limit on an expression's length is 24,576 characters; be generous
MAX_DEPTH = 100


def is_expression(text: str) -> bool:
    return len(text) >= 2 and text[0] == "[" and text[-1] == "]" and not text.startswith("[[")


def unescape(text: str) -> str:
    """A literal string's value: `[[...` loses its first `[`."""
    return text[1:] if text.startswith("[[") else text


def parse(text: str) -> Node:
    """The tree of the expression string `text` (with its brackets); FunctionError with the
    position (1-based, in `text`) of what is wrong."""
    if not is_expression(text):
        return Lit(unescape(text))
    if len(text) > MAX_LENGTH:
        raise FunctionError(f"the expression is longer than {MAX_LENGTH} characters")
    p = _Parser(text, 1, len(text) - 1)
    p.skip()
    if p.i >= p.end:
        raise FunctionError("the expression is empty")
    node = p.expr(0)
    p.skip()
    if p.i < p.end:
        raise p.error(f"unexpected '{text[p.i]}'")
    return node


class _Parser:
    def __init__(self, text: str, start: int, end: int) -> None:
        self.text, self.i, self.end = text, start, end

    def error(self, what: str, at: int | None = None) -> FunctionError:
        return FunctionError(f"{what} at position {(self.i if at is None else at) + 1}")

    def skip(self) -> None:
        while self.i < self.end and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < self.end else ""

    def expect(self, c: str) -> None:
        self.skip()
        if self.peek() != c:
            found = f"'{self.peek()}'" if self.peek() else "the end of the expression"
            raise self.error(f"expected '{c}', found {found}")
        self.i += 1

    def expr(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.error("the expression is nested too deeply")
        node = self.primary(depth)
        while True:
            self.skip()
            c, pos = self.peek(), self.i
            if c == ".":
                self.i += 1
                self.skip()
                name = self.identifier()
                if not name:
                    raise self.error("expected a property name after '.'")
                node = Member(node, name, pos)
            elif c == "[":
                self.i += 1
                self.skip()
                index = self.expr(depth + 1)
                self.expect("]")
                node = Index(node, index, pos)
            else:
                return node

    def primary(self, depth: int) -> Node:
        self.skip()
        c, pos = self.peek(), self.i
        if c == "'":
            return Lit(self.string(), pos)
        if c == "-" or c.isdigit():
            return Lit(self.integer(), pos)
        name = self.identifier()
        if not name:
            found = f"'{c}'" if c else "the end of the expression"
            raise self.error(f"expected a function call, a string or a number, found {found}")
        self.skip()
        if self.peek() != "(":
            words = {"true": True, "false": False, "null": None}
            if name.lower() in words:
                return Lit(words[name.lower()], pos)
            raise self.error(f"expected '(' after the function name '{name[:80]}'")
        self.i += 1
        args: list[Node] = []
        self.skip()
        if self.peek() == ")":
            self.i += 1
            return Call(name, (), pos)
        while True:
            args.append(self.expr(depth + 1))
            self.skip()
            if self.peek() == ",":
                self.i += 1
                continue
            self.expect(")")
            return Call(name, tuple(args), pos)

    def identifier(self) -> str:
        start = self.i
        while self.i < self.end and (self.text[self.i].isalnum() or self.text[self.i] in "_$"):
            self.i += 1
        name = self.text[start:self.i]
        if name and name[0].isdigit():
            raise self.error("a name cannot start with a digit", start)
        return name

    def string(self) -> str:
        start = self.i
        self.i += 1
        parts: list[str] = []
        while True:
            j = self.text.find("'", self.i, self.end)
            if j < 0:
                raise self.error("a string that is not closed", start)
            parts.append(self.text[self.i:j])
            if j + 1 < self.end and self.text[j + 1] == "'":
                parts.append("'")
                self.i = j + 2
                continue
            self.i = j + 1
            return "".join(parts)

    def integer(self) -> int:
        start = self.i
        if self.peek() == "-":
            self.i += 1
        digits = self.i
        while self.i < self.end and self.text[self.i].isdigit():
            self.i += 1
        if self.i == digits:
            raise self.error("expected digits after '-'", start)
        if self.i < self.end and self.text[self.i] == ".":
            raise self.error("template expressions have no decimal numbers (use json('1.5'))", start)
        value = int(self.text[start:self.i])
        if not -2**63 <= value < 2**63:
            raise self.error("the integer is out of the 64-bit range", start)
        return value
