"""The local files the remote strategy needs, checked before anything connects.

``Deployment`` says how tea reaches the hosts: the binaries to ship (one for every
host, or one per architecture, each a ``Basefile`` named on the hosts by its
SHA-256, its ELF header telling its architecture), or a ``command`` that runs tea
already installed there. ``check_key_files`` makes sure ``identity_file`` and
``known_hosts`` (when set) are readable files, so a typo is named before any
connection. Both transports use them; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from remote.bundle import default_basefile
from remote.config import ARCH_ALIASES, RemoteSettings
from remote.errors import RemoteSetupError

__all__ = ["Basefile", "Deployment", "check_key_files", "resolve_deployment"]

_ELF_MACHINES = {0x03: "i686", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64"}
_BUNDLE_HINT = "build the binary with `tea bundle -o dist/tea` and set settings.parallel.remote.basefile to the file"


@dataclass(frozen=True, slots=True)
class Basefile:
    """The local binary to ship, with its SHA-256 and target architecture."""

    path: Path
    sha256: str
    arch: str | None

    @classmethod
    def from_path(cls, path: Path) -> Basefile:
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "does not exist"
            raise RemoteSetupError(f"basefile {path} {what}", hint=_BUNDLE_HINT)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            head = handle.read(20)
            digest.update(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        arch = None
        if head[:4] == b"\x7fELF":
            machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
            arch = _ELF_MACHINES.get(machine, "unknown")
        return cls(path, digest.hexdigest(), arch)

    @property
    def remote_name(self) -> str:
        return f"tea-{self.sha256[:16]}"


@dataclass(frozen=True, slots=True)
class Deployment:
    """How the hosts run tea: a shipped binary (per architecture) or an installed ``command``."""

    binaries: dict[str, Basefile] = field(default_factory=dict)
    """By architecture; ``""``: the one binary for every host."""
    command: tuple[str, ...] = ()

    def binary_for(self, arch: str, host: str) -> Basefile | None:
        """The binary for ``host`` (whose ``uname -m`` is ``arch``); ``None`` with a
        ``command``. Raises ``RemoteSetupError`` when no binary fits the host."""
        if self.command:
            return None
        arch = ARCH_ALIASES.get(arch, arch)
        if "" in self.binaries:
            binary = self.binaries[""]
            if binary.arch and arch and binary.arch != arch:
                raise RemoteSetupError(
                    f"basefile {binary.path} is built for {binary.arch}, but {host} is {arch}",
                    host=host,
                    hint="build the binary on (or for) the hosts' architecture with `tea bundle`, "
                    "or give one per architecture: basefile: {x86_64: ..., aarch64: ...}",
                )
            return binary
        if arch not in self.binaries:
            raise RemoteSetupError(
                f"no basefile for {host}, whose architecture is {arch or 'unknown'}; "
                f"basefile has {', '.join(sorted(self.binaries))}",
                host=host,
                hint=f"build tea on a {arch} machine with `tea bundle` and add it: basefile: {{{arch}: PATH}}",
            )
        return self.binaries[arch]

    def remote_names(self) -> list[str]:
        """The cache names of every binary that may be shipped."""
        return sorted({b.remote_name for b in self.binaries.values()})


def resolve_deployment(settings: RemoteSettings) -> Deployment:
    """What ``settings`` ship: ``command``, the ``basefile``(s), or the running binary when
    tea is frozen. Raises ``RemoteSetupError`` for a missing file or a binary built for
    another architecture than its mapping key."""
    if settings.command:
        return Deployment(command=settings.command)
    pairs = [(arch, Path(path).expanduser()) for arch, path in settings.basefiles]
    if not pairs:
        running = default_basefile()
        if running is None:
            raise RemoteSetupError(
                "the remote strategy needs a tea binary to ship, and this tea is not one",
                hint="build one with `tea bundle -o dist/tea` and set settings.parallel.remote.basefile: "
                "dist/tea, or run tea installed on the hosts: settings.parallel.remote.command: python3 -m tea",
            )
        pairs = [("", running)]
    binaries: dict[str, Basefile] = {}
    for arch, path in pairs:
        binary = Basefile.from_path(path)
        if arch and binary.arch and binary.arch != arch:
            raise RemoteSetupError(f"basefile {path}, given for {arch}, is built for {binary.arch}",
                                   hint="check the architecture keys of settings.parallel.remote.basefile")
        binaries[arch] = binary
    return Deployment(binaries=binaries)


def check_key_files(settings: RemoteSettings) -> None:
    """``identity_file`` and ``known_hosts``, when set, must be readable files: say so
    before connecting."""
    for key in ("identity_file", "known_hosts"):
        value = getattr(settings, key)
        if value is None:
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            problem = "is a directory, not a file"
        elif not path.exists():
            problem = "does not exist"
        elif not os.access(path, os.R_OK):
            problem = "cannot be read"
        else:
            continue
        hint = (
            "point it at your private key, or leave it out to use ssh's defaults and ~/.ssh/config"
            if key == "identity_file"
            else f"trust each host once, after checking its fingerprint: ssh-keyscan -p PORT HOST >> {path}"
        )
        raise RemoteSetupError(f"settings.parallel.remote.{key}: {path} {problem}", hint=hint)
