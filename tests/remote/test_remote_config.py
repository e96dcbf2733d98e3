"""settings.parallel.remote: parsed once at load (RemoteExecutor.parse_options), defaults, errors at their key."""

from __future__ import annotations

from pathlib import Path

import pytest

import tea
from remote.config import RemoteSettings, forwarded_env
from remote.executor import RemoteExecutor
from tea import overrides
from tea.errors import LoadError, LoadErrors, SchemaError
from tea.yamlsrc import load_yaml, location_of


def test_defaults():
    settings = RemoteExecutor.parse_options({"hosts": ["a@b:22"]})
    assert isinstance(settings, RemoteSettings)
    assert settings.transport == "ssh"
    assert settings.cleanup is True
    assert settings.known_hosts is None  # OpenSSH's files and ~/.ssh/config decide
    assert settings.identity_file is None and settings.basefiles == () and settings.command == ()
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
        ({"hosts": ["a"], "basefile": {"x86_64": ""}}, "entry x86_64 must be a non-empty path"),
        ({"hosts": ["a"], "basefile": {"x 86": "t"}}, "no architecture name"),
        ({"hosts": ["a"], "basefile": []}, "a path or a mapping"),
        ({"hosts": ["a"], "command": ""}, "command line"),
        ({"hosts": ["a"], "command": "python3 -m 'tea"}, "cannot be split"),
        ({"hosts": ["a"], "command": "tea", "basefile": "dist/tea"}, "exclude each other"),
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


def test_command_is_split_into_words_never_a_shell_string():
    settings = RemoteExecutor.parse_options({"hosts": ["a"], "command": "python3 -m 'tea' ; rm -rf ~"})
    assert settings.command == ("python3", "-m", "tea", ";", "rm", "-rf", "~")


def test_basefile_per_architecture_and_paths_relative_to_the_workflow(tmp_path):
    flow = tmp_path / "flows" / "flow.yaml"
    flow.parent.mkdir()
    flow.write_text("x: 1\n")
    doc = load_yaml(
        "hosts: [a]\nbasefile: {x86_64: dist/tea-x86, arm64: /opt/tea-arm}\nidentity_file: keys/id\n"
        "known_hosts: ~/.ssh/known_hosts\n", str(flow),
    )
    settings = RemoteExecutor.parse_options(doc, location_of)
    assert settings.basefiles == (("aarch64", "/opt/tea-arm"), ("x86_64", str(tmp_path / "flows" / "dist" / "tea-x86")))
    assert settings.basefile_for("arm64") == "/opt/tea-arm" and settings.basefile_for("riscv64") is None
    assert settings.identity_file == str(tmp_path / "flows" / "keys" / "id")
    assert settings.known_hosts == "~/.ssh/known_hosts"  # ~ is the user's home, wherever the file is


def test_a_path_brought_by_a_flag_is_relative_to_where_tea_runs(tmp_path, monkeypatch):
    flow = tmp_path / "flow.yaml"
    flow.write_text(_REMOTE_FLOW)
    monkeypatch.chdir(tmp_path / "..")
    workflow = tea.load(flow, overrides=[overrides.setting("settings.parallel.remote.basefile=dist/tea")])
    (fan,) = workflow.graph.fanouts()
    assert fan.config.options.basefiles == (("", str(Path.cwd() / "dist" / "tea")),)


_REMOTE_FLOW = (
    "name: fleet\nsettings: {parallel: {strategy: remote, remote: {hosts: [a], slots: 2}}}\n"
    "nodes:\n  - name: s\n  - name: b\n  - name: j\n"
    "edges:\n  - {from: s, to: [b], parallel: true, fan_in: j}\n"
)


def test_a_hosts_file_replaces_the_hosts_with_their_slots(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(_REMOTE_FLOW)
    (tmp_path / "hosts.txt").write_text("# the fleet\n4/alice@edge1:2222\n\nedge2   # two slots by default\n")
    workflow = tea.load(flow, overrides=[overrides.hosts("@hosts.txt", cwd=tmp_path)])
    (fan,) = workflow.graph.fanouts()
    assert [(h.name, h.slots) for h in fan.config.options.hosts] == [("alice@edge1:2222", 4), ("edge2", 2)]


@pytest.mark.parametrize("bad", ["edge1;reboot", "-oProxyCommand=x", "$(id)@h", "0/edge1"])
def test_a_bad_host_from_the_flag_is_a_schema_error_at_the_flag(tmp_path, bad):
    flow = tmp_path / "flow.yaml"
    flow.write_text(_REMOTE_FLOW)
    with pytest.raises(LoadError) as caught:
        tea.load(flow, overrides=[overrides.hosts(f"edge0,{bad}")])
    error = caught.value.errors[0] if isinstance(caught.value, LoadErrors) else caught.value
    assert isinstance(error, SchemaError) and "bad host" in error.message
    assert error.location is not None and error.location.file == f"--hosts edge0,{bad}"
    assert error.hint == "write [N/][user@]host[:port] (N: slots), or a name from ~/.ssh/config"


def test_a_bad_host_in_the_yaml_is_located_at_its_line(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(_REMOTE_FLOW.replace("hosts: [a]", "hosts: [a, 'b c']"))
    with pytest.raises(LoadError) as caught:
        tea.load(flow)
    error = caught.value.errors[0] if isinstance(caught.value, LoadErrors) else caught.value
    assert (error.location.file, error.location.line) == (str(flow), 2)

