"""settings.parallel.remote: parsed once at load (RemoteExecutor.parse_options), defaults, errors at their key."""

from __future__ import annotations

import pytest

import tea
from remote.config import RemoteSettings, forwarded_env
from remote.executor import RemoteExecutor
from tea.errors import LoadError, SchemaError
from tea.yamlsrc import load_yaml, location_of


def test_defaults():
    settings = RemoteExecutor.parse_options({"hosts": ["a@b:22"]})
    assert isinstance(settings, RemoteSettings)
    assert settings.transport == "ssh"
    assert settings.cleanup is True
    assert settings.known_hosts == "~/.ssh/known_hosts"
    assert settings.workdir == "/tmp"
    assert settings.cache_dir == ".cache/tea"  # relative: to the remote home
    assert settings.hosts[0].slots == 4


def test_errors_point_at_the_key_through_the_loaders_locate():
    doc = load_yaml("hosts: [a]\ntransprot: ssh\n", "flow.yaml")
    with pytest.raises(SchemaError) as caught:
        RemoteExecutor.parse_options(doc, location_of)
    assert "unknown key 'transprot'" in caught.value.message
    assert (caught.value.location.file, caught.value.location.line) == ("flow.yaml", 2)


def test_a_bad_host_is_located_at_its_item():
    doc = load_yaml("hosts:\n  - good@host\n  - 'bad host'\n", "flow.yaml")
    with pytest.raises(SchemaError, match="bad host 'bad host'") as caught:
        RemoteExecutor.parse_options(doc, location_of)
    assert caught.value.location.line == 3


def test_a_misspelled_key_gets_a_suggestion():
    with pytest.raises(SchemaError) as caught:
        RemoteExecutor.parse_options({"hostz": ["a"]})
    assert caught.value.message == "parallel strategy 'remote' needs settings.parallel.remote.hosts"
    with pytest.raises(SchemaError) as caught:
        RemoteExecutor.parse_options({"hosts": ["a"], "hostz": ["b"]})
    assert caught.value.message == "unknown key 'hostz' in settings.parallel.remote"
    assert caught.value.hint == "did you mean 'hosts'?"


@pytest.mark.parametrize("raw", [None, {}, {"identity_file": "~/.ssh/id"}])
def test_no_hosts_says_how_to_add_them(raw):
    with pytest.raises(SchemaError) as caught:
        RemoteExecutor.parse_options(raw)
    assert caught.value.hint == "add settings.parallel.remote.hosts: [user@host, ...]"


def test_a_workflow_on_the_remote_strategy_without_hosts_fails_to_load():
    text = (
        "name: nohosts\nsettings: {parallel: {strategy: remote}}\n"
        "nodes:\n  - name: a\n  - name: b\n  - name: c\n"
        "edges:\n  - {from: a, to: [b], parallel: true, fan_in: c}\n"
    )
    with pytest.raises(LoadError) as caught:
        tea.loads(text, "nohosts.yaml")
    assert "needs settings.parallel.remote.hosts" in str(caught.value)
    assert "add settings.parallel.remote.hosts: [user@host, ...]" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"hosts": ["a"], "transport": "rsh"}, "transport must be one of"),
        ({"hosts": ["a"], "connect_timeout": 0}, "positive number"),
        ({"hosts": ["a"], "cleanup": "yes"}, "true or false"),
        ({"hosts": ["a"], "env": "HOME"}, "list of variable names"),
        ({"hosts": ["a"], "slots": 0}, "positive integer"),
        ({"hosts": ["a"], "basefile": ""}, "non-empty string"),
        ({"hosts": []}, "non-empty list"),
        ("hosts: [a]", "must be a mapping"),
    ],
)
def test_bad_settings(value, message):
    with pytest.raises(SchemaError, match=message):
        RemoteExecutor.parse_options(value)


def test_settings_are_hashable_so_executors_can_reuse_hosts():
    a = RemoteExecutor.parse_options({"hosts": ["a", "b"], "env": ["X"]})
    b = RemoteExecutor.parse_options({"hosts": ["a", "b"], "env": ["X"]})
    assert hash(a) == hash(b) and a == b


def test_env_forwarding_with_globs_and_excludes():
    environ = {"OPENAI_API_KEY": "k", "APP_MODE": "x", "APP_SECRET": "s", "HOME": "/root"}
    assert forwarded_env(("OPENAI_API_KEY", "APP_*", "!*SECRET"), environ) == {
        "OPENAI_API_KEY": "k",
        "APP_MODE": "x",
    }
    assert forwarded_env((), environ) == {}
