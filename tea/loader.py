"""YAML workflow → validated, compiled ``Graph``: the one compile step of loading.

::

    text ─► load_yaml (every mapping knows its file and line)
         ─► read_document (tea.document: top level, settings, config, schema, imports)
         ─► read_nodes   (tea.node_loader: nodes and their bodies, goto)
         ─► read_edges   (tea.routes: edges and static fan-outs), chain (implicit routes)
         ─► check_graph  (tea.validation: references, fan-out shapes)
         ─► Graph        (tea.graph: frozen data)

Every problem is a ``LoadError`` naming the file and line; all of a file's
problems are collected (``collect_errors`` returns them for ``tea validate``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tea.document import Document, read_document
from tea.errors import InputError, LoadError, LoadErrors, Location, SchemaError
from tea.graph import START, Graph, Node
from tea.node_loader import BodyContext, read_nodes
from tea.overrides import Override, apply
from tea.problems import Problems
from tea.pycode import compile_deferred
from tea.routes import chain, read_edges
from tea.validation import check_graph
from tea.yamlsrc import load_yaml, location_of

__all__ = ["collect_errors", "load_graph", "load_graph_text"]


def load_graph_text(
    text: str,
    path: Path | None = None,
    *,
    overrides: Sequence[Override] = (),
    _stack: tuple[Path, ...] = (),
) -> Graph:
    """Compile workflow YAML text (``path`` locates it for errors and relative files);
    ``overrides`` (``tea.overrides``) are merged onto the document before it is checked."""
    file = str(path) if path is not None else None
    doc = apply(load_yaml(text, file), overrides) if overrides else load_yaml(text, file)
    problems = Problems(file)
    document = read_document(doc, path, problems)
    ctx = BodyContext(
        file=file, source_lines=text.splitlines(), registry=document.registry,
        reducers=document.reducers, parallel=document.parallel,
        parse_parallel=document.parse_parallel,
        load_subgraph=lambda sub, where: _load_subgraph(sub, where, _stack),
        workflow_dir=path.parent if path else Path.cwd(),
        settings=document.settings,
    )
    nodes = _read_nodes(document.raw, ctx, document, problems)
    problems.guard(lambda: compile_deferred(ctx.deferred), None)
    start = read_edges(document, nodes, problems)
    chain(nodes, start)
    check_graph(document, nodes, start, problems)
    problems.raise_any()
    return _compile(document, nodes, start, text, path)


def _read_nodes(doc: Any, ctx: BodyContext, document: Document, problems: Problems) -> dict[str, Node]:
    nodes_raw = doc.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        # Nothing more can be read: report it beside what was found so far.
        problems.add(SchemaError(
            "'nodes' must be a non-empty list",
            location_of(doc, "nodes") if "nodes" in doc else Location(problems.file, 1, 1),
            hint="add nodes: [{name: first, run: ...}]",
        ))
        problems.raise_any()
    return read_nodes(nodes_raw, ctx, problems, document.settings)


def _compile(document: Document, nodes: dict[str, Node], start: Any, text: str, path: Path | None) -> Graph:
    doc = document.raw
    return Graph(
        name=str(doc.get("name") or (path.stem if path else "workflow")),
        nodes=nodes,
        entry=START if start is not None else next(iter(nodes)),
        start_route=start,
        variables=document.variables,
        settings=document.settings,
        data=doc.get("data") or {},
        reducers=document.reducers,
        parallel=document.parallel,
        lua_settings=document.lua_settings,
        recursion_limit=document.recursion_limit,
        max_branches=document.max_branches,
        interrupt_before=document.interrupt_before,
        interrupt_after=document.interrupt_after,
        initial_state=doc.get("initial_state") or {},
        source=doc,
        source_text=text,
        path=path,
        key=hashlib.sha256(text.encode()).hexdigest(),
        config=document.config,
        input_schema=document.input_schema,
        output_schema=document.output_schema,
    )


def _load_subgraph(path: Path, where: Location, stack: tuple[Path, ...]) -> Graph:
    resolved = path.resolve()
    if resolved in stack:
        raise SchemaError(f"subgraph {path} includes itself", where)
    if not resolved.is_file():
        raise SchemaError(f"subgraph file not found: {path}", where,
                          hint="paths are relative to the workflow file")
    return load_graph(resolved, _stack=(*stack, resolved))


def load_graph(path: str | Path, *, overrides: Sequence[Override] = (), _stack: tuple[Path, ...] = ()) -> Graph:
    """Read and compile the workflow at ``path`` (with ``overrides`` merged on)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"workflow file not found: {file}", Location(str(file))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read workflow {file}: {exc}", Location(str(file))) from None
    return load_graph_text(text, file, overrides=overrides, _stack=_stack or (file.resolve(),))


def collect_errors(path: str | Path, overrides: Sequence[Override] = ()) -> list[LoadError]:
    """Every load problem of the workflow at ``path`` (empty when it is valid)."""
    try:
        load_graph(path, overrides=overrides)
    except LoadErrors as exc:
        return exc.errors
    except LoadError as exc:
        return [exc]
    return []
