"""Inline Python (``run:``), compiled once at load time.

Two shapes, as in the reference dialect:

* a code block with a top-level ``return`` is a function body: a dict return is
  the update, any other value ``v`` becomes ``{"result": v}``;
* otherwise the block runs as a script and its non-underscore locals (values
  that are not modules, functions or classes) are the update.

Either way the code sees ``state``, ``variables``, ``json`` and, in a fan-in,
``parallel_results``. Assigning to ``state[key]`` also updates ``key``. Code is
compiled with the workflow file as its filename and YAML line numbers, so a
traceback points at the user's line in the YAML file.

``print()`` writes to stderr, each line led by the node's name (``[fetch] ...``):
stdout carries the run's data (``tea run wf.yaml | jq``), wherever the node runs.
``print(..., file=f)`` still writes to ``f``.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
import types
from collections.abc import Callable, Mapping
from typing import IO, Any

from tea.errors import Location, WorkflowSyntaxError
from tea.overlay import BranchState

__all__ = ["PythonCode", "compile_deferred", "stderr_print"]

_INJECTED = frozenset({"state", "variables", "json", "parallel_results", "secrets", "print", "__builtins__"})
_HIDDEN_TYPES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
_FN_NAME = "__tea_node__"
_TOP_RETURN = re.compile(r"^return\b", re.MULTILINE)
"""A ``return`` at column 0 of the (dedented) block is certainly top-level."""
_LABEL_NODE = re.compile(r"^node '(.*)'")
"""The node a label names (``node 'x'``, ``node 'x' step 2``): quotes inside a name are kept."""


def stderr_print(label: str) -> Callable[..., None]:
    """A ``print`` for the code of ``label`` (``node 'x'``): to stderr, each line led by
    ``[x] ``; with ``file=``, the builtin ``print``. Thread-safe as ``sys.stderr`` is."""
    match = _LABEL_NODE.match(label)
    name = match.group(1) if match else label
    prefix = f"[{name}] " if name else ""
    at_line_start = True

    def print_(*values: object, sep: str | None = " ", end: str | None = "\n",
               file: IO[str] | None = None, flush: bool = False) -> None:
        nonlocal at_line_start
        if file is not None:
            builtins.print(*values, sep=sep, end=end, file=file, flush=flush)
            return
        stream = sys.stderr
        if stream is None:  # pythonw, a daemon: nowhere to print
            return
        text = (" " if sep is None else sep).join(map(str, values)) + ("\n" if end is None else end)
        lines = text.splitlines(keepends=True)
        out = [line if index == 0 and not at_line_start else prefix + line for index, line in enumerate(lines)]
        if lines:
            at_line_start = lines[-1].endswith(("\n", "\r"))
        stream.write("".join(out))
        if flush:
            stream.flush()

    return print_


class PythonCode:
    """Compiled inline Python; ``run(state, ...)`` returns the update (or None)."""

    __slots__ = ("_code", "_fn", "_print", "is_function", "label", "location", "source")

    def __init__(self, source: str, location: Location, *, defer: bool = False, label: str = "") -> None:
        self.source = source
        self.location = location
        self.label = f" of {label}" if label else ""
        self._print = stderr_print(label)
        self._fn: types.FunctionType | None = None
        self._code: types.CodeType | None = None
        if defer and self._plain_function():
            self.is_function = True  # compiled by ``compile_deferred`` with its neighbours
        else:
            self._code, self.is_function = self._compile()

    def _plain_function(self) -> bool:
        return bool(_TOP_RETURN.search(self.source)) and '"""' not in self.source and "'''" not in self.source

    def _wrapped(self, name: str) -> str:
        head = f"def {name}(state, variables, parallel_results, secrets):\n"
        return head + "".join(f"    {line}\n" for line in self.source.splitlines())

    def _compile(self) -> tuple[types.CodeType, bool]:
        # Blank lines in front put the code at its YAML line numbers without walking
        # the AST; a top-level ``return`` shows up as the compiler's own complaint.
        filename = self.location.file or "<workflow>"
        first_line = self.location.line or 1
        if '"""' in self.source or "'''" in self.source:
            return self._compile_exact(filename, first_line)
        if not _TOP_RETURN.search(self.source):
            try:
                return compile("\n" * (first_line - 1) + self.source, filename, "exec"), False
            except SyntaxError as exc:
                if "'return' outside function" not in (exc.msg or ""):
                    raise self._syntax_error(exc) from None
        wrapped = "\n" * max(first_line - 2, 0) + self._wrapped(_FN_NAME)
        try:
            return compile(wrapped, filename, "exec"), True
        except SyntaxError as exc:
            raise self._syntax_error(exc, indent=4) from None

    def _compile_exact(self, filename: str, first_line: int) -> tuple[types.CodeType, bool]:
        """The slow path for blocks with multi-line strings: re-indenting the block would
        change their text, and a line inside one may start with ``return``."""
        try:
            tree = ast.parse("\n" * (first_line - 1) + self.source, filename=filename)
        except SyntaxError as exc:
            raise self._syntax_error(exc) from None
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Return):
                break
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
                stack.extend(ast.iter_child_nodes(node))
        else:
            return compile(tree, filename, "exec"), False
        wrapper = ast.parse(f"def {_FN_NAME}(state, variables, parallel_results, secrets): pass")
        function = wrapper.body[0]
        assert isinstance(function, ast.FunctionDef)
        function.body = tree.body
        return compile(ast.fix_missing_locations(wrapper), filename, "exec"), True

    def _syntax_error(self, exc: SyntaxError, indent: int = 0) -> WorkflowSyntaxError:
        """``exc`` located in the YAML file (``indent``: columns the wrapping added)."""
        column = None
        if self.location.column is not None and exc.offset:
            column = max(1, self.location.column + exc.offset - 1 - indent)
        return WorkflowSyntaxError(
            f"Python syntax error in run{self.label}: {exc.msg}",
            Location(self.location.file, exc.lineno, column),
            hint="fix the Python code of this node (indentation inside a YAML block is relative)",
        )

    def _function(self) -> types.FunctionType:
        if self._fn is None:
            if self._code is None:
                self._code, _ = self._compile()
            namespace: dict[str, Any] = {"json": json, "print": self._print, "__builtins__": builtins}
            exec(self._code, namespace)
            self._fn = namespace[_FN_NAME]
        return self._fn

    def run(
        self,
        state: dict[str, Any],
        variables: Mapping[str, Any],
        parallel_results: Any = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        # The code gets its own view: what it assigns into ``state`` becomes part of its
        # update (merged through the reducers), never a change behind the runner's back.
        # A branch's state is an overlay whose values are the branch's own: the view reads
        # them as they are, so only what the code reads is copied, once.
        view = BranchState(state, private=True) if isinstance(state, BranchState) else dict(state)
        if self.is_function:
            value = self._function()(view, variables, parallel_results, secrets or {})
            update = value if isinstance(value, dict) else {"result": value}
        else:
            namespace: dict[str, Any] = {
                "state": view,
                "variables": variables,
                "json": json,
                "parallel_results": parallel_results,
                "secrets": secrets or {},
                "print": self._print,
                "__builtins__": builtins,
            }
            assert self._code is not None  # a script body is always compiled at once
            exec(self._code, namespace)
            update = {
                k: v
                for k, v in namespace.items()
                if not k.startswith("_") and k not in _INJECTED and not isinstance(v, _HIDDEN_TYPES)
            }
        if isinstance(view, BranchState):
            written = view.delta()
        else:
            written = {k: v for k, v in view.items() if state.get(k, _ABSENT) is not v}
        if written:
            update = {**written, **update}
        return update

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.source, self.location, self.label.removeprefix(" of ")))


def _rebuild(source: str, location: Location, label: str) -> PythonCode:
    """A ``PythonCode`` unpickled (in a worker process): compiled again, its label kept."""
    return PythonCode(source, location, label=label)


_ABSENT = object()


def compile_deferred(codes: list[PythonCode]) -> None:
    """Compile the deferred function bodies of one workflow with one ``compile`` per file.

    ``compile`` has a fixed cost per call that dominates for small node bodies;
    one module holding every node's function, each at its own YAML line, costs far
    less. Each function then gets a namespace of its own, as if compiled alone. A
    syntax error (or two blocks sharing a line) falls back to one compile each, so
    the error names the right node.
    """
    by_file: dict[str, list[PythonCode]] = {}
    for code in sorted((c for c in codes if c._code is None and c._fn is None), key=_line):
        by_file.setdefault(code.location.file or "<workflow>", []).append(code)
    for filename, group in by_file.items():
        if not _compile_together(filename, group):
            for code in group:
                code._code, code.is_function = code._compile()


def _compile_together(filename: str, group: list[PythonCode]) -> bool:
    parts: list[str] = []
    line = 1
    for index, code in enumerate(group):
        def_line = max(_line(code) - 1, 1)
        if def_line < line:
            return False
        parts.append("\n" * (def_line - line) + code._wrapped(f"__tea_node_{index}__"))
        line = def_line + 1 + len(code.source.splitlines())
    try:
        module = compile("".join(parts), filename, "exec")
    except SyntaxError:
        return False
    namespace: dict[str, Any] = {"__builtins__": builtins}
    exec(module, namespace)
    for index, code in enumerate(group):
        fn = namespace[f"__tea_node_{index}__"]
        own = {"json": json, "print": code._print, "__builtins__": builtins}
        code._fn = types.FunctionType(fn.__code__, own, _FN_NAME)
    return True


def _line(code: PythonCode) -> int:
    return code.location.line or 1
