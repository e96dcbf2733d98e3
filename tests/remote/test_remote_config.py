"""settings.parallel.remote: defaults, validation with locations, env forwarding."""

from __future__ import annotations

import pytest

from remote.config import RemoteSettings, forwarded_env, validate_remote_settings
from tea.errors import SchemaError
from tea.yamlsrc import load_yaml


def test_defaults():
    settings = RemoteSettings.from_mapping({"hosts": ["a@b:22"]})
    assert settings.transport == "ssh"
    assert settings.cleanup is True
    assert settings.known_hosts == "~/.ssh/known_hosts"
    assert settings.workdir == "/tmp"
    assert settings.hosts[0].slots == 4


def test_errors_point_at_the_key():
    doc = load_yaml("hosts: [a]\ntransprot: ssh\n", "flow.yaml")
    with pytest.raises(SchemaError) as caught:
        validate_remote_settings(doc)
    assert "unknown key 'transprot'" in caught.value.message
    assert caught.value.location.line == 2


def test_a_misspelled_key_gets_a_suggestion():
    with pytest.raises(SchemaError) as caught:
        RemoteSettings.from_mapping({"hostz": ["a"]})
    assert caught.value.message == "unknown key 'hostz' in settings.parallel.remote"
    assert caught.value.hint == "did you mean 'hosts'?"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "needs settings.parallel.remote.hosts"),
        ({"hosts": ["a"], "transport": "rsh"}, "transport must be one of"),
        ({"hosts": ["a"], "connect_timeout": 0}, "positive number"),
        ({"hosts": ["a"], "cleanup": "yes"}, "true or false"),
        ({"hosts": ["a"], "env": "HOME"}, "list of variable names"),
        ({"hosts": ["a"], "slots": 0}, "positive integer"),
        ({"hosts": ["a"], "basefile": ""}, "non-empty string"),
    ],
)
def test_bad_settings(value, message):
    with pytest.raises(SchemaError, match=message):
        RemoteSettings.from_mapping(value)


def test_settings_are_hashable_so_executors_can_reuse_hosts():
    a = RemoteSettings.from_mapping({"hosts": ["a", "b"], "env": ["X"]})
    b = RemoteSettings.from_mapping({"hosts": ["a", "b"], "env": ["X"]})
    assert hash(a) == hash(b) and a == b


def test_env_forwarding_with_globs_and_excludes():
    environ = {"OPENAI_API_KEY": "k", "APP_MODE": "x", "APP_SECRET": "s", "HOME": "/root"}
    assert forwarded_env(("OPENAI_API_KEY", "APP_*", "!*SECRET"), environ) == {
        "OPENAI_API_KEY": "k",
        "APP_MODE": "x",
    }
    assert forwarded_env((), environ) == {}
