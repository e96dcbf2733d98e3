"""Data steps: parse JSON and YAML, validate against a JSON Schema, process CSV, query SQLite.

Each reads its input from a parameter (``content``/``data``) or a file (``path``),
confined like every file step. Unlike the ``json.parse`` action, text that does
not parse fails the step (with the line and column), since a mission routes on
step status, not on state.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from tea.mission.steps.base import Param, StepContext, StepType, is_template
from tea.mission.steps.files import as_text, relative

__all__ = ["STEP_TYPES"]

_MAX_SCHEMA_ERRORS = 20
_NO_JSONSCHEMA = "validate_schema needs the jsonschema package, which is not installed (pip install jsonschema)"


def _source_text(ctx: StepContext, p: dict[str, Any], text_key: str = "content") -> str:
    if (p[text_key] is None) == (p["path"] is None):
        raise ctx.fail(f"give either {text_key} or path", retryable=False)
    if p["path"] is None:
        return as_text(p[text_key])
    target = ctx.confine(p["path"])
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ctx.fail(f"no such file '{p['path']}'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(f"cannot read '{p['path']}': {exc}") from None


def parse_json(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    if p["path"] is None and not isinstance(p["content"], str | None):
        return {"data": p["content"]}  # already a value (a template rendered one)
    text = _source_text(ctx, p)
    try:
        return {"data": json.loads(text)}
    except json.JSONDecodeError as exc:
        raise ctx.fail(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                       retryable=False) from None


def parse_yaml(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    import yaml

    if p["path"] is None and not isinstance(p["content"], str | None):
        return {"data": p["content"]}
    text = _source_text(ctx, p)
    try:
        return {"data": yaml.safe_load(text)}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ctx.fail(f"not valid YAML: {problem}{where}", retryable=False) from None


def _load_document(ctx: StepContext, path: str) -> Any:
    import yaml

    target = ctx.confine(path)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(f"cannot read '{path}': {exc}") from None
    try:
        return json.loads(text) if target.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ctx.fail(f"'{path}' does not parse: {exc}", retryable=False) from None


def validate_schema(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Check ``data`` (or the JSON/YAML file ``path``) against a JSON Schema."""
    try:
        import jsonschema
    except ImportError:
        raise ctx.fail(_NO_JSONSCHEMA, retryable=False) from None

    if (p["data"] is None) == (p["path"] is None) or (p["schema"] is None) == (p["schema_path"] is None):
        raise ctx.fail("give data or path, and schema or schema_path", retryable=False)
    data = _load_document(ctx, p["path"]) if p["path"] is not None else p["data"]
    schema = _load_document(ctx, p["schema_path"]) if p["schema_path"] is not None else p["schema"]
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ctx.fail(f"the schema is not a valid JSON Schema: {exc.message}", retryable=False) from None
    found = sorted(validator_class(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    errors = [
        {"path": "/".join(str(part) for part in e.absolute_path), "message": e.message}
        for e in found[:_MAX_SCHEMA_ERRORS]
    ]
    if errors and p["fail_on_invalid"]:
        first = errors[0]
        raise ctx.fail(f"{len(found)} schema error(s); first at '/{first['path']}': {first['message']}",
                       retryable=False)
    return {"valid": not errors, "errors": errors}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _statistics(columns: list[str], rows: list[dict[str, str]]) -> dict[str, Any]:
    """count, sum, min, max and mean of every column whose values are all numbers."""
    stats: dict[str, Any] = {}
    for column in columns:
        values = [_number(row.get(column) or "") for row in rows if (row.get(column) or "") != ""]
        numbers = [v for v in values if v is not None]
        if not numbers or len(numbers) != len(values):
            continue
        total = sum(numbers)
        stats[column] = {"count": len(numbers), "sum": total, "min": min(numbers),
                         "max": max(numbers), "mean": total / len(numbers)}
    return stats


def _sort_key(column: str) -> Any:
    def key(row: dict[str, str]) -> tuple[int, float, str]:
        value = row.get(column) or ""
        number = _number(value)
        return (0, number, "") if number is not None else (1, 0.0, value)
    return key


def csv_process(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Read CSV rows, keep those matching ``where``, sort, keep ``select``ed columns,
    cut at ``limit``; optionally write the result; always report numeric statistics."""
    text = _source_text(ctx, {"content": p["content"], "path": p["input_file"]})
    reader = csv.DictReader(io.StringIO(text), delimiter=p["delimiter"])
    columns = list(reader.fieldnames or [])
    rows = [dict(row) for row in reader]
    for column, wanted in (p["where"] or {}).items():
        if column not in columns:
            raise ctx.fail(f"where: no column '{column}' (columns: {', '.join(columns)})", retryable=False)
        rows = [row for row in rows if row.get(column) == as_text(wanted)]
    if p["sort_by"] is not None:
        if p["sort_by"] not in columns:
            raise ctx.fail(f"sort_by: no column '{p['sort_by']}'", retryable=False)
        rows.sort(key=_sort_key(p["sort_by"]), reverse=p["descending"])
    if p["select"]:
        missing = [c for c in p["select"] if c not in columns]
        if missing:
            raise ctx.fail(f"select: no column '{missing[0]}' (columns: {', '.join(columns)})", retryable=False)
        columns = list(p["select"])
        rows = [{c: row.get(c, "") for c in columns} for row in rows]
    if p["limit"] is not None:
        rows = rows[: p["limit"]]
    out: dict[str, Any] = {"columns": columns, "rows": rows, "count": len(rows),
                           "statistics": _statistics(columns, rows)}
    if p["output_file"] is not None:
        target = ctx.confine(p["output_file"], "output_file")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=p["delimiter"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(buffer.getvalue(), encoding="utf-8")
        out["output_file"] = relative(ctx, target)
    return out


def _cell(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


def sql_query(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Run ``query`` (one statement, with ``params``) or ``script`` (several) on a SQLite file."""
    import sqlite3

    if (p["query"] is None) == (p["script"] is None):
        raise ctx.fail("give either query (one statement) or script (several)", retryable=False)
    database = ":memory:" if p["database"] == ":memory:" else str(ctx.confine(p["database"], "database"))
    try:
        with sqlite3.connect(database, timeout=ctx.remaining() or 30.0) as connection:
            if p["script"] is not None:
                connection.executescript(p["script"])
                return {"rows": [], "columns": [], "count": 0, "rowcount": connection.total_changes}
            cursor = connection.execute(p["query"], p["params"] if p["params"] is not None else ())
            columns = [d[0] for d in cursor.description or ()]
            rows = [{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]
            return {"rows": rows, "columns": columns, "count": len(rows),
                    "rowcount": cursor.rowcount, "lastrowid": cursor.lastrowid}
    except sqlite3.Error as exc:
        raise ctx.fail(f"SQLite: {exc}") from None


def _sql_check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    database = params.get("database")
    if isinstance(database, str) and not is_template(database) and "://" in database:
        return [f"database must be a SQLite file path (or :memory:), not a URL: '{database}'"]
    return []


def _schema_check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    schema = params.get("schema")
    try:
        import jsonschema
    except ImportError:
        return [_NO_JSONSCHEMA]
    if not isinstance(schema, Mapping) or any(is_template(v) for v in schema.values()):
        return []

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"schema is not a valid JSON Schema: {exc.message}"]
    return []


_TEXT_OR_PATH = (Param("content", "any", doc="the text (or an already parsed value)"),
                 Param("path", doc="a file to read instead"))

STEP_TYPES = (
    StepType("parse_json", "data", "parse JSON text or a JSON file", _TEXT_OR_PATH,
             {"data": "the parsed value"}, parse_json),
    StepType("parse_yaml", "data", "parse YAML text or a YAML file (safe loader)", _TEXT_OR_PATH,
             {"data": "the parsed value"}, parse_yaml),
    StepType("validate_schema", "data", "validate data against a JSON Schema (the jsonschema library)",
             (Param("data", "any", doc="the value to check"),
              Param("path", doc="a JSON or YAML file to check instead"),
              Param("schema", "mapping", doc="the JSON Schema"),
              Param("schema_path", doc="a JSON or YAML file holding the schema"),
              Param("fail_on_invalid", "bool", default=True, doc="fail the step when data is invalid")),
             {"valid": "true when the data matches", "errors": "[{path, message}] (at most 20)"},
             validate_schema, _schema_check),
    StepType("csv_process", "data", "filter, sort and select CSV rows; numeric statistics",
             (Param("input_file", doc="the CSV file"), Param("content", doc="CSV text instead of a file"),
              Param("delimiter", default=",", doc="the field separator"),
              Param("where", "mapping", doc="keep rows whose column equals the value"),
              Param("sort_by", doc="sort by this column (numbers numerically)"),
              Param("descending", "bool", default=False, doc="sort in descending order"),
              Param("select", "strings", doc="keep only these columns, in this order"),
              Param("limit", "int", minimum=0, doc="keep the first N rows"),
              Param("output_file", doc="write the resulting CSV here")),
             {"columns": "the column names", "rows": "the rows as mappings", "count": "how many rows",
              "statistics": "{column: {count, sum, min, max, mean}} of the numeric columns",
              "output_file": "with output_file: its path"}, csv_process),
    StepType("sql_query", "data", "run SQL on a SQLite database file",
             (Param("database", required=True, doc="the SQLite file under the files root, or :memory:"),
              Param("query", doc="one SQL statement"), Param("params", "any", doc="its ? or :name values"),
              Param("script", doc="several statements instead of query (no results)")),
             {"rows": "result rows as mappings (blobs as hex)", "columns": "column names",
              "count": "rows returned", "rowcount": "rows changed", "lastrowid": "id of the last insert"},
             sql_query, _sql_check),
)
