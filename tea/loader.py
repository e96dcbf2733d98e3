"""YAML workflow → validated, compiled ``Graph``.

Reads The Edge Agent's dialect: top-level keys, nodes (bodies come from
``tea.node_loader``), routing (goto, legacy edges, implicit chaining), static
fan-outs (``type: parallel`` edges and ``to: [...]`` + ``parallel: true``), and
settings. Every problem is a ``LoadError`` naming the file and line;
``collect_errors`` reports all of them at once for ``tea validate``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executors.base import ParallelConfig
from tea.conditions import compile_condition
from tea.errors import InputError, LoadError, LoadErrors, Location, ReferenceError_, SchemaError
from tea.graph import END, START, Edge, FanOut, Graph, Node, Route
from tea.node_loader import NODE_KEYS, BodyContext, check_keys, compile_node_body, suggest
from tea.pycode import compile_deferred
from tea.yamlsrc import load_yaml, located, location_of

__all__ = ["TOP_LEVEL_KEYS", "load_graph", "load_graph_text"]

TOP_LEVEL_KEYS = frozenset({
    "name", "description", "version", "variables", "data", "state_schema", "initial_state",
    "settings", "config", "imports", "nodes", "edges",
})
_EDGE_KEYS = frozenset({
    "from", "to", "when", "condition", "type", "fan_in", "parallel", "parallel_strategy",
    "max_workers", "timeout_seconds", "fail_fast", "retry", "circuit_breaker",
    "on_branch_failure", "remote", "description",
})
_EDGE_PARALLEL_KEYS = ("max_workers", "timeout_seconds", "fail_fast", "retry",
                       "circuit_breaker", "on_branch_failure", "remote")
_CONFIG_KEYS = frozenset({"interrupt_before", "interrupt_after", "checkpoint_dir",
                          "checkpoint_interval_seconds", "raise_exceptions", "checkpoint",
                          "recursion_limit"})


def _parse_parallel(raw: Any, base: ParallelConfig | None, path: str = "settings.parallel") -> ParallelConfig:
    from tea.parallel_settings import parse_parallel_config

    config = parse_parallel_config(raw, base=base, path=path)
    if isinstance(raw, Mapping) and raw.get("remote") is not None:
        from remote.config import validate_remote_settings

        validate_remote_settings(raw["remote"])
    return config


def _lua_settings(settings: Mapping[str, Any]) -> Any:
    """``settings.lua`` checked at load time (``None``: defaults, built on first Lua use)."""
    if settings.get("lua") is None:
        return None
    from tea.lua import LuaSettings

    try:
        return LuaSettings.from_mapping(settings["lua"])
    except (ValueError, TypeError) as exc:
        raise SchemaError(str(exc), location_of(settings, "lua"),
                          hint="settings.lua takes sandbox, timeout_seconds and max_memory_mb") from None


def _reducers(schema: Any) -> dict[str, Any]:
    from tea.state import get_reducer, known_reducers

    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise SchemaError("state_schema must be a mapping of key: type", location_of(schema))
    reducers = {}
    for key, spec in schema.items():
        if isinstance(spec, Mapping) and "reducer" in spec:
            name = spec["reducer"]
            try:
                reducers[key] = get_reducer(str(name))
            except KeyError:
                raise SchemaError(
                    f"state_schema.{key}: unknown reducer '{name}'",
                    location_of(spec, "reducer"),
                    hint=suggest(str(name), known_reducers())
                    or f"known reducers: {', '.join(known_reducers())}",
                ) from None
    return reducers


def _names(raw: Any, where: Location, what: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        return frozenset(n.strip() for n in raw.split(",") if n.strip())
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return frozenset(raw)
    raise SchemaError(f"{what} must be a list of node names", where)


class _Builder:
    """Holds one document while it is turned into a graph."""

    def __init__(self, doc: Mapping[str, Any], text: str, path: Path | None, stack: tuple[Path, ...]):
        self.doc = doc
        self.text = text
        self.path = path
        self.file = str(path) if path is not None else None
        self.stack = stack
        self.errors: list[LoadError] = []
        # Where each (node, target) reference is written, so a missing target is reported there.
        self.ref_locs: dict[tuple[str, str], Location] = {}

    def fail(self, exc: LoadError) -> None:
        self.errors.append(exc)

    def build(self) -> Graph:
        doc = self.doc
        if not isinstance(doc, Mapping):
            raise SchemaError("a workflow must be a YAML mapping with a 'nodes' list",
                              Location(self.file, 1, 1))
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                self.fail(SchemaError(f"unknown top-level key '{key}'", location_of(doc, key),
                                      hint=suggest(str(key), TOP_LEVEL_KEYS)
                                      or f"allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"))
        settings = doc.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise SchemaError("settings must be a mapping", location_of(doc, "settings"))
        for key in ("variables", "data", "initial_state", "config"):
            if doc.get(key) is not None and not isinstance(doc.get(key), Mapping):
                self.fail(SchemaError(f"'{key}' must be a mapping", location_of(doc, key)))
        try:
            parallel = _parse_parallel(settings.get("parallel"), None)
        except LoadError as exc:
            self.fail(exc)
            parallel = ParallelConfig()
        reducers = self._guard(lambda: _reducers(doc.get("state_schema")), {})
        lua_settings = self._guard(lambda: _lua_settings(settings), None)
        registry = self._guard(self._registry, None)
        nodes_raw = doc.get("nodes")
        if not isinstance(nodes_raw, list) or not nodes_raw:
            raise SchemaError("'nodes' must be a non-empty list", location_of(doc, "nodes")
                              if "nodes" in doc else Location(self.file, 1, 1),
                              hint="add nodes: [{name: first, run: ...}]")
        ctx = BodyContext(
            file=self.file, source_lines=self.text.splitlines(), registry=registry,
            reducers=reducers, parallel=parallel, parse_parallel=_parse_parallel,
            load_subgraph=self._load_subgraph,
            workflow_dir=self.path.parent if self.path else Path.cwd(),
            settings=settings,
        )
        nodes = self._nodes(nodes_raw, ctx)
        self._guard(lambda: compile_deferred(ctx.deferred), None)
        start_route = self._edges(doc.get("edges"), nodes, parallel)
        self._implicit(nodes, start_route)
        self._check_references(nodes, start_route)
        self._check_remote(nodes, start_route)
        config = doc.get("config") or {}
        if isinstance(config, Mapping):
            for key in config:
                if key not in _CONFIG_KEYS:
                    self.fail(SchemaError(f"unknown key '{key}' in config", location_of(config, key),
                                          hint=suggest(str(key), _CONFIG_KEYS)))
        before = self._guard(lambda: _names(config.get("interrupt_before"),
                                            location_of(config, "interrupt_before"),
                                            "config.interrupt_before"), frozenset())
        after = self._guard(lambda: _names(config.get("interrupt_after"),
                                           location_of(config, "interrupt_after"),
                                           "config.interrupt_after"), frozenset())
        for name in before | after:
            if name not in nodes:
                self.fail(ReferenceError_(f"interrupt names unknown node '{name}'",
                                          location_of(config), hint=suggest(name, nodes)))
        interval = config.get("checkpoint_interval_seconds", 0.1)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
            self.fail(SchemaError("config.checkpoint_interval_seconds must be a number >= 0",
                                  location_of(config, "checkpoint_interval_seconds"),
                                  hint="0 saves progress after every node; the default is 0.1"))
        limit = settings.get("recursion_limit", config.get("recursion_limit", 10_000))
        if not isinstance(limit, int) or limit < 1:
            self.fail(SchemaError("recursion_limit must be a positive integer",
                                  location_of(settings, "recursion_limit")))
            limit = 10_000
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise LoadErrors(self.errors)
        first = next(iter(nodes))
        return Graph(
            name=str(doc.get("name") or (self.path.stem if self.path else "workflow")),
            nodes=nodes,
            entry=START if start_route is not None else first,
            start_route=start_route,
            variables=doc.get("variables") or {},
            settings=settings,
            data=doc.get("data") or {},
            reducers=reducers,
            parallel=parallel,
            lua_settings=lua_settings,
            recursion_limit=limit,
            interrupt_before=before,
            interrupt_after=after,
            initial_state=doc.get("initial_state") or {},
            source=doc,
            source_text=self.text,
            path=self.path,
            key=hashlib.sha256(self.text.encode()).hexdigest(),
            config=config,
        )

    def _guard(self, fn: Any, default: Any) -> Any:
        try:
            return fn()
        except LoadError as exc:
            self.fail(exc)
            return default

    def _registry(self) -> Any:
        from tea.actions import builtin_registry, load_imports

        registry = builtin_registry(entry_points=False)
        imports = self.doc.get("imports")
        if imports:
            if not isinstance(imports, list):
                raise SchemaError("imports must be a list", location_of(self.doc, "imports"))
            from tea.actions.imports import ImportEngine

            base = self.path.parent if self.path else Path.cwd()
            settings = self.doc.get("settings") or {}
            engine = ImportEngine(self.doc.get("variables") or {}, settings, base, registry)
            load_imports(registry, imports, base, engine)
        return registry

    def _load_subgraph(self, path: Path, where: Location) -> Graph:
        resolved = path.resolve()
        if resolved in self.stack:
            raise SchemaError(f"subgraph {path} includes itself", where)
        if not resolved.is_file():
            raise SchemaError(f"subgraph file not found: {path}", where,
                              hint="paths are relative to the workflow file")
        return load_graph(resolved, _stack=(*self.stack, resolved))

    def _nodes(self, nodes_raw: list[Any], ctx: BodyContext) -> dict[str, Node]:
        nodes: dict[str, Node] = {}
        for index, raw in enumerate(nodes_raw):
            where = location_of(nodes_raw, index)
            if not isinstance(raw, Mapping):
                self.fail(SchemaError("each node must be a mapping with a 'name'", where))
                continue
            name = raw.get("name")
            if "name" in raw and not isinstance(name, str):
                self.fail(SchemaError(f"a node name must be a string, not {type(name).__name__} ({name!r})",
                                      location_of(raw, "name"), hint=f'quote it: name: "{name}"'))
                continue
            if not isinstance(name, str) or not name:
                self.fail(SchemaError("node without a 'name'", where, hint="add name: <unique name>"))
                continue
            if name in nodes:
                self.fail(SchemaError(f"duplicate node name '{name}'", location_of(raw, "name"),
                                      hint=f"first defined at line {nodes[name].location.line}"))
                continue
            if name in (START, END):
                self.fail(SchemaError(f"'{name}' is reserved", location_of(raw, "name")))
                continue
            try:
                check_keys(raw, NODE_KEYS, f"node '{name}'")
                body, kind = compile_node_body(raw, ctx, f"node '{name}'")
                node = Node(name=name, body=body, location=location_of(raw), kind=kind)
                self._node_extras(node, raw)
            except LoadError as exc:
                self.fail(exc)
                node = Node(name=name, body=None, location=location_of(raw))
            nodes[name] = node
            if isinstance(raw.get("fan_in"), str):
                self.ref_locs.setdefault((name, raw["fan_in"]), location_of(raw, "fan_in"))
            node.route = self._goto(raw, name)
        return nodes

    def _node_extras(self, node: Node, raw: Mapping[str, Any]) -> None:
        interrupt = raw.get("interrupt")
        if interrupt is not None and interrupt not in ("before", "after"):
            raise SchemaError(f"node '{node.name}': interrupt must be 'before' or 'after'",
                              location_of(raw, "interrupt"))
        node.interrupt = interrupt
        fan_in = raw.get("fan_in")
        if node.kind != "dynamic_parallel" and fan_in is not None:
            if not isinstance(fan_in, bool):
                raise SchemaError(f"node '{node.name}': fan_in must be true or false here",
                                  location_of(raw, "fan_in"),
                                  hint="fan_in: <node> belongs on a parallel edge or a dynamic_parallel node")
            node.fan_in = fan_in
        from tea.policy import parse_node_policy

        node.error_policy = parse_node_policy(raw, self.doc.get("settings") or {}, node.name)

    def _goto(self, raw: Mapping[str, Any], name: str) -> Route:
        route = Route()
        goto = raw.get("goto")
        if goto is None:
            return route
        where = location_of(raw, "goto")
        if isinstance(goto, str):
            route.goto = goto
            self.ref_locs.setdefault((name, goto), where)
            return route
        if not isinstance(goto, list):
            self.fail(SchemaError(f"node '{name}': goto must be a node name or a list of rules", where))
            return route
        rules = []
        for index, rule in enumerate(goto):
            rule_where = location_of(goto, index)
            if not isinstance(rule, Mapping) or "to" not in rule:
                self.fail(SchemaError(f"node '{name}': each goto rule needs 'to'", rule_where,
                                      hint="write {if: <condition>, to: <node>} or {to: <node>}"))
                continue
            try:
                check_keys(rule, frozenset({"if", "to"}), f"goto rule of node '{name}'")
                condition = compile_condition(rule["if"], location_of(rule, "if")) if "if" in rule else None
                rules.append((condition, str(rule["to"])))
                self.ref_locs.setdefault((name, str(rule["to"])), location_of(rule, "to"))
            except LoadError as exc:
                self.fail(exc)
        route.rules = rules
        return route

    def _edges(self, edges_raw: Any, nodes: dict[str, Node], parallel: ParallelConfig) -> Route | None:
        if edges_raw is None:
            return None
        if not isinstance(edges_raw, list):
            self.fail(SchemaError("edges must be a list", location_of(self.doc, "edges")))
            return None
        start_route: Route | None = None
        groups: dict[tuple[str, str], FanOut] = {}
        for index, edge in enumerate(edges_raw):
            where = location_of(edges_raw, index)
            if not isinstance(edge, Mapping):
                self.fail(SchemaError("each edge must be a mapping with 'from' and 'to'", where))
                continue
            try:
                check_keys(edge, _EDGE_KEYS, "edge")
                for key in ("from", "to"):
                    if key not in edge:
                        raise SchemaError(f"edge without '{key}'", where)
                source = str(edge["from"])
                if source != START and source not in nodes:
                    raise ReferenceError_(f"edge from unknown node '{source}'", location_of(edge, "from"),
                                          hint=suggest(source, nodes))
                if source == START:
                    start_route = start_route or Route()
                    route = start_route
                else:
                    route = nodes[source].route
                targets = edge["to"]
                for target in targets if isinstance(targets, list) else [targets]:
                    self.ref_locs.setdefault((source, str(target)), location_of(edge, "to"))
                if isinstance(edge.get("fan_in"), str):
                    self.ref_locs.setdefault((source, edge["fan_in"]), location_of(edge, "fan_in"))
                is_parallel = edge.get("type") == "parallel" or edge.get("parallel") is True
                if is_parallel or isinstance(targets, list):
                    fan = self._fanout(edge, source, parallel)
                    merged = groups.get((source, fan.fan_in))
                    if merged is not None:
                        route.fanouts.remove(merged)
                        fan = FanOut(source, merged.targets + fan.targets, fan.fan_in, merged.config, merged.location)
                    groups[(source, fan.fan_in)] = fan
                    route.fanouts.append(fan)
                    continue
                if edge.get("type") not in (None, "normal"):
                    raise SchemaError(f"unknown edge type '{edge.get('type')}'", location_of(edge, "type"),
                                      hint="use type: parallel (with fan_in) or leave it out")
                route.edges.append(self._edge(edge, str(targets)))
            except LoadError as exc:
                self.fail(exc)
        return start_route

    def _edge(self, edge: Mapping[str, Any], target: str) -> Edge:
        if "condition" in edge:
            cond_raw = edge["condition"]
            if isinstance(cond_raw, Mapping) and cond_raw.get("type") == "expression":
                cond_raw = cond_raw.get("value")
            condition = compile_condition(cond_raw, location_of(edge, "condition"))
            if "when" in edge:
                return Edge(target, condition, edge["when"], True)
            return Edge(target, condition)
        if "when" in edge:
            return Edge(target, compile_condition(edge["when"], location_of(edge, "when")))
        return Edge(target)

    def _fanout(self, edge: Mapping[str, Any], source: str, parallel: ParallelConfig) -> FanOut:
        where = location_of(edge)
        fan_in = edge.get("fan_in")
        if not isinstance(fan_in, str):
            raise SchemaError(f"parallel edge from '{source}' has no fan_in", where,
                              hint="add fan_in: <node where the branches meet>")
        targets = edge["to"]
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise SchemaError("'to' of a parallel edge must be a node name or a list of names",
                              location_of(edge, "to"))
        overrides = {k: edge[k] for k in _EDGE_PARALLEL_KEYS if k in edge}
        if "parallel_strategy" in edge:
            overrides["strategy"] = edge["parallel_strategy"]
        if overrides:
            settings_at = located(overrides, edge, {"strategy": "parallel_strategy"})
            config = _parse_parallel(settings_at, parallel, f"parallel edge from '{source}'")
        else:
            config = parallel
        return FanOut(source, tuple(targets), fan_in, config, where)

    def _implicit(self, nodes: dict[str, Node], start: Route | None) -> None:
        names = list(nodes)
        sibling_entries: dict[str, str] = {}
        routes = [node.route for node in nodes.values()] + ([start] if start is not None else [])
        for route in routes:
            for fan in route.fanouts:
                for target in fan.targets:
                    sibling_entries[target] = fan.fan_in
        if start is not None and start.fanouts:
            start.default_after_fanout = start.fanouts[0].fan_in
        for index, name in enumerate(names):
            route = nodes[name].route
            route.next = names[index + 1] if index + 1 < len(names) else END
            fans = route.fanouts
            if fans:
                route.default_after_fanout = fans[0].fan_in
            body = nodes[name].body
            fan_in = getattr(body, "fan_in", None)
            if isinstance(fan_in, str):
                route.default_after_fanout = fan_in
            # A branch's last node never falls through into a sibling branch's entry.
            nxt = route.next
            in_branch = name in sibling_entries or self._reaches_from_sibling(name, nodes, sibling_entries)
            if nxt in sibling_entries and name not in sibling_entries.values() and in_branch:
                route.next = sibling_entries[nxt]

    @staticmethod
    def _reaches_from_sibling(name: str, nodes: dict[str, Node], entries: dict[str, str]) -> bool:
        return any(name in nodes[e].route.targets() for e in entries if e in nodes)

    def _check_remote(self, nodes: dict[str, Node], start: Route | None) -> None:
        """A fan-out on the remote strategy needs hosts: say so at load, not at dispatch."""
        configs = [(fan.config, fan.location) for n in nodes.values() for fan in n.route.fanouts]
        configs += [(fan.config, fan.location) for fan in (start.fanouts if start else [])]
        for node in nodes.values():
            config = getattr(node.body, "config", None)
            if isinstance(config, ParallelConfig):
                configs.append((config, node.location))
        for config, where in configs:
            if config.strategy == "remote" and not (config.remote or {}).get("hosts"):
                self.fail(SchemaError(
                    "this fan-out runs on the remote strategy but no hosts are configured", where,
                    hint="add settings.parallel.remote.hosts: [user@host, ...] (or remote: {hosts: [...]} here)",
                ))
                return

    def _check_references(self, nodes: dict[str, Node], start: Route | None) -> None:
        known = set(nodes) | {END}
        routes = [(n.name, n.route, n.location) for n in nodes.values()]
        if start is not None:
            routes.append((START, start, Location(self.file)))
        for name, route, where in routes:
            checks = [route.goto] if route.goto else []
            checks += [t for _, t in route.rules or []]
            checks += [e.target for e in route.edges]
            for fan in route.fanouts:
                checks += [*fan.targets, fan.fan_in]
                if fan.fan_in in fan.targets:
                    self.fail(SchemaError(f"fan-out from '{name}': fan_in '{fan.fan_in}' is also a branch",
                                          fan.location))
            policy = nodes[name].error_policy if name in nodes else None
            if policy is not None and policy.fallback:
                checks.append(policy.fallback)
            body_fan_in = getattr(nodes[name].body, "fan_in", None) if name in nodes else None
            if isinstance(body_fan_in, str):
                checks.append(body_fan_in)
            for target in checks:
                if target not in known:
                    self.fail(ReferenceError_(
                        f"node '{name}' routes to unknown node '{target}'",
                        self.ref_locs.get((name, target), where),
                        hint=suggest(target, nodes) or f"known nodes: {', '.join(nodes)}",
                    ))


def load_graph_text(text: str, path: Path | None = None, *, _stack: tuple[Path, ...] = ()) -> Graph:
    """Compile workflow YAML text (``path`` locates it for errors and relative files)."""
    doc = load_yaml(text, str(path) if path is not None else None)
    return _Builder(doc, text, path, _stack).build()


def load_graph(path: str | Path, *, _stack: tuple[Path, ...] = ()) -> Graph:
    """Read and compile the workflow at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"workflow file not found: {file}", Location(str(file))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read workflow {file}: {exc}", Location(str(file))) from None
    return load_graph_text(text, file, _stack=_stack or (file.resolve(),))


def collect_errors(path: str | Path) -> list[LoadError]:
    """Every load problem of the workflow at ``path`` (empty when it is valid)."""
    try:
        load_graph(path)
    except LoadErrors as exc:
        return exc.errors
    except LoadError as exc:
        return [exc]
    return []

