"""Data steps: JSON and YAML parsing, JSON Schema validation, CSV processing, SQLite queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mission_helpers import LoadMission, RunMission

from tea.errors import LoadError


def test_parse_json_and_yaml_from_text_and_files(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"a": [1, 2]}')
    (tmp_path / "c.yaml").write_text("a: {b: true}\n")
    result = run("""
        config: {fail_fast: false}
        steps:
          - {id: text, step_type: parse_json, parameters: {content: '{"x": 1}'}}
          - {id: file, step_type: parse_json, parameters: {path: c.json}}
          - {id: yml, step_type: parse_yaml, parameters: {path: c.yaml}}
          - {id: bad, step_type: parse_json, parameters: {content: '{"x": }'}}
          - {id: reuse, step_type: parse_yaml, depends_on: [file], parameters: {content: "{{ file.output.data }}"}}
    """)
    out = {k: r.output for k, r in result.step_results.items()}
    assert out["text"] == {"data": {"x": 1}} and out["file"] == {"data": {"a": [1, 2]}}
    assert out["yml"] == {"data": {"a": {"b": True}}} and out["reuse"] == {"data": {"a": [1, 2]}}
    assert "not valid JSON: Expecting value at line 1, column 7" in (result.step_results["bad"].error or "")


SCHEMA = "{type: object, required: [name, age], properties: {name: {type: string}, age: {type: integer, minimum: 0}}}"


def test_validate_schema_passes_fails_and_reports(run: RunMission) -> None:
    result = run(f"""
        config: {{fail_fast: false}}
        steps:
          - {{id: good, step_type: validate_schema, parameters: {{data: {{name: ana, age: 3}}, schema: {SCHEMA}}}}}
          - {{id: bad, step_type: validate_schema, parameters: {{data: {{name: 1, age: -1}}, schema: {SCHEMA}}}}}
          - id: report
            step_type: validate_schema
            parameters: {{data: {{age: x}}, schema: {SCHEMA}, fail_on_invalid: false}}
    """)
    steps = result.step_results
    assert steps["good"].output == {"valid": True, "errors": []}
    assert steps["bad"].status == "failed" and "2 schema error(s); first at '/age'" in (steps["bad"].error or "")
    assert steps["report"].output["valid"] is False
    assert {e["path"] for e in steps["report"].output["errors"]} == {"", "age"}


def test_an_invalid_schema_is_a_load_error(load: LoadMission) -> None:
    try:
        load("steps:\n  - {id: v, step_type: validate_schema, parameters: {data: 1, schema: {type: numbr}}}\n")
    except LoadError as exc:
        assert "schema is not a valid JSON Schema" in str(exc) and exc.location.line == 2
    else:
        raise AssertionError("an invalid schema loaded")


def test_validate_schema_reads_files(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"type": "array", "items": {"type": "number"}}')
    (tmp_path / "d.yaml").write_text("[1, 2.5, 3]\n")
    result = run("steps:\n  - {id: v, step_type: validate_schema, parameters: {path: d.yaml, schema_path: s.json}}\n")
    assert result.step_results["v"].output == {"valid": True, "errors": []}


def test_csv_process_filters_sorts_selects_and_writes(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("region,item,amount\neu,tea,10\nus,tea,7\neu,cup,2.5\neu,pot,30\n")
    result = run("""
        steps:
          - id: eu
            step_type: csv_process
            parameters:
              input_file: sales.csv
              where: {region: eu}
              sort_by: amount
              descending: true
              select: [item, amount]
              limit: 2
              output_file: out/eu.csv
    """)
    out = result.step_results["eu"].output
    assert out["rows"] == [{"item": "pot", "amount": "30"}, {"item": "tea", "amount": "10"}]
    assert out["columns"] == ["item", "amount"] and out["count"] == 2
    assert out["statistics"] == {"amount": {"count": 2, "sum": 40.0, "min": 10.0, "max": 30.0, "mean": 20.0}}
    assert (tmp_path / "out/eu.csv").read_text() == "item,amount\npot,30\ntea,10\n"


def test_sql_query_script_insert_and_select(run: RunMission, tmp_path: Path) -> None:
    result = run("""
        steps:
          - id: schema
            step_type: sql_query
            parameters:
              database: shop.db
              script: "CREATE TABLE items (name TEXT, price REAL); INSERT INTO items VALUES ('tea', 3.5);"
          - id: insert
            step_type: sql_query
            depends_on: [schema]
            parameters: {database: shop.db, query: "INSERT INTO items VALUES (?, ?)", params: [cup, 2]}
          - id: select
            step_type: sql_query
            depends_on: [insert]
            parameters: {database: shop.db, params: {p: 1},
                         query: "SELECT name, price FROM items WHERE price > :p ORDER BY name"}
    """)
    assert result.status == "completed", result.to_json()
    assert result.step_results["insert"].output["rowcount"] == 1
    rows = result.step_results["select"].output["rows"]
    assert rows == [{"name": "cup", "price": 2.0}, {"name": "tea", "price": 3.5}]
    with sqlite3.connect(tmp_path / "shop.db") as db:
        assert db.execute("SELECT count(*) FROM items").fetchone() == (2,)


def test_sql_errors_and_urls(run: RunMission, load: LoadMission) -> None:
    result = run("steps:\n  - {id: q, step_type: sql_query, parameters: {database: ':memory:', query: 'SELEC 1'}}\n")
    assert "SQLite: near \"SELEC\": syntax error" in (result.step_results["q"].error or "")
    try:
        load("steps:\n  - {id: q, step_type: sql_query, parameters: {database: 'postgresql://h/db', query: x}}\n")
    except LoadError as exc:
        assert "must be a SQLite file path" in str(exc)
    else:
        raise AssertionError("a database URL loaded")
