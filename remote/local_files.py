"""The local files the remote strategy needs, checked before anything connects.

``Basefile`` is the tea binary to ship (its SHA-256 names it on the hosts; its ELF
header tells its architecture); ``check_key_files`` makes sure ``identity_file``
and ``known_hosts`` are readable files, so a typo is named before any connection.
Both transports use them; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from remote.bundle import default_basefile
from remote.config import RemoteSettings
from remote.errors import RemoteSetupError

__all__ = ["Basefile", "check_key_files", "resolve_basefile"]

_ELF_MACHINES = {0x03: "i686", 0x28: "arm", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "riscv64"}


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
            raise RemoteSetupError(
                f"basefile {path} {what}",
                hint="build the binary with `tea bundle -o dist/tea` and set "
                "settings.parallel.remote.basefile to the file",
            )
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


def resolve_basefile(settings: RemoteSettings) -> Basefile:
    """The binary to ship: ``basefile``, or the running one when tea is frozen."""
    path = Path(settings.basefile).expanduser() if settings.basefile else default_basefile()
    if path is None:
        raise RemoteSetupError(
            "the remote strategy needs a tea binary to ship, and this tea is not one",
            hint="build one with `tea bundle -o dist/tea` and set "
            "settings.parallel.remote.basefile: dist/tea",
        )
    return Basefile.from_path(path)


def check_key_files(settings: RemoteSettings) -> None:
    """``identity_file`` and ``known_hosts`` must be readable files: say so before connecting."""
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
            "point it at your private key, or leave it out to use ssh's defaults"
            if key == "identity_file"
            else f"trust each host once, after checking its fingerprint: "
            f"ssh-keyscan -p PORT HOST >> {path}"
        )
        raise RemoteSetupError(f"settings.parallel.remote.{key}: {path} {problem}", hint=hint)
