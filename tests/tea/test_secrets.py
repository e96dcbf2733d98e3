"""Secrets: parsing --secrets and --secrets-env, redaction of data and log records."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from executors.base import BranchResult
from tea.errors import InputError
from tea.secrets import RedactingFilter, Secrets, parse_secrets_arg, secrets_from_env


def test_repr_and_str_show_names_only():
    secrets = Secrets({"api": "sk-very-secret", "db": {"password": "hunter22"}})
    for text in (repr(secrets), str(secrets), f"{secrets}"):
        assert "sk-very-secret" not in text and "hunter22" not in text
        assert "api" in text and "db" in text
    assert secrets["api"] == "sk-very-secret"
    assert dict(secrets) == {"api": "sk-very-secret", "db": {"password": "hunter22"}}


def test_redact_replaces_values_deeply_and_copies():
    secrets = Secrets({"api": "sk-very-secret", "nested": {"pw": "hunter22"}, "pin": 987654,
                       "short": "abc"})
    state = {"header": "Bearer sk-very-secret", "list": ["hunter22", ("x", "hunter22!")],
             "n": 5, "pin_text": "pin=987654", "short": "abc"}
    redacted = secrets.redact(state)
    assert redacted == {"header": "Bearer ***", "list": ["***", ("x", "***!")], "n": 5,
                        "pin_text": "pin=***", "short": "abc"}
    assert state["header"] == "Bearer sk-very-secret"


def test_longest_secret_wins_when_one_contains_another():
    secrets = Secrets({"a": "token", "b": "token-extended"})
    assert secrets.redact_text("x token-extended y token") == "x *** y ***"


def test_empty_secrets_redact_nothing_and_pickle():
    assert Secrets().redact({"a": "b"}) == {"a": "b"}
    restored = pickle.loads(pickle.dumps(Secrets({"k": "value-1234"})))
    assert restored.redact_text("value-1234") == "***"


def test_is_secret_value():
    secrets = Secrets({"k": "value-1234", "n": {"inner": "deep-secret"}})
    assert secrets.is_secret_value("value-1234")
    assert secrets.is_secret_value("deep-secret")
    assert not secrets.is_secret_value("value")


def test_parse_json_argument(tmp_path):
    assert parse_secrets_arg('{"openai_api_key": "sk-1"}', cwd=tmp_path) == {
        "openai_api_key": "sk-1"}


@pytest.mark.parametrize(("name", "text"), [
    ("s.json", '{"token": "t-1234"}'),
    ("s.yaml", "token: t-1234\n"),
    ("s.yml", "token: t-1234\n"),
])
def test_parse_file_argument(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert parse_secrets_arg(f"@{name}", cwd=tmp_path) == {"token": "t-1234"}


@pytest.mark.parametrize(("arg", "files", "message"), [
    ("{not json", {}, r"--secrets is not valid JSON \(Expecting property name"),
    ('["a"]', {}, "must be a mapping of names to values, got list"),
    ("@missing.json", {}, "does not exist"),
    ("@bad.yaml", {"bad.yaml": "a: [sk-leaky\n"}, "not valid YAML"),
    ("@bad.json", {"bad.json": '{"k": sk-leaky}'}, "not valid JSON"),
])
def test_parse_errors_are_input_errors_without_content(tmp_path, arg, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message) as info:
        parse_secrets_arg(arg, cwd=tmp_path)
    assert "sk-leaky" not in str(info.value)


def test_secrets_from_env_lowercases_suffixes():
    environ = {"TEA_SECRET_API_KEY": "k1", "TEA_SECRET_DB": "k2", "TEA_SECRETX": "no",
               "TEA_SECRET_": "empty-name", "OTHER": "no"}
    expected = {"api_key": "k1", "db": "k2"}
    assert secrets_from_env("TEA_SECRET", environ) == expected
    assert secrets_from_env("TEA_SECRET_", environ) == expected


def test_secrets_from_env_needs_a_prefix():
    with pytest.raises(InputError, match="needs a prefix"):
        secrets_from_env("", {})


def test_redacting_filter_cleans_messages_args_and_tracebacks():
    secrets = Secrets({"k": "sk-live-999"})
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter(secrets))
    logger = logging.getLogger("tea.test_secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s", "sk-live-999")
        try:
            raise ValueError("key sk-live-999 rejected")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records[0] == "calling with ***"
    assert "key *** rejected" in records[1]
    assert all("sk-live-999" not in text for text in records)


def test_every_form_of_a_secret_is_redacted() -> None:
    """Escaped for JSON or repr, URL-encoded, in bytes or sets, or a number equal to a secret."""
    pw = 'p@ss"wo/rd\\x'
    secrets = Secrets({"k": pw, "pin": 48151623})
    out = secrets.redact({
        "json": json.dumps({"v": pw}),
        "repr": repr([pw]),
        "url": "https://user:" + "p%40ss%22wo%2Frd%5Cx" + "@host/",
        "bytes": b"<" + pw.encode() + b">",
        "set": {pw, "other"},
        "number": 48151623,
        "record": BranchResult("fan[0]", True, {"token": pw}),
    })
    text = repr(out)
    assert pw not in text and "48151623" not in text and "p%40ss" not in text
    assert out["set"] == {"***", "other"} and out["number"] == "***"
    assert out["record"]["state"] == {"token": "***"}  # redacted as the JSON it becomes
