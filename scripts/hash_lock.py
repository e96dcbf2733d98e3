"""Add ``--hash=sha256:...`` to every pin of a lock file, so ``pip install --require-hashes``
installs exactly the files that were locked.

Usage: python scripts/hash_lock.py requirements-dev.lock

Each pinned distribution is downloaded (for this machine's platform and Python, as
``make test`` installs it) into a temporary directory and hashed; comment lines are kept.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: Path) -> None:
    lines = lock.read_text(encoding="utf-8").splitlines()
    pins = [line.split("\\")[0].strip() for line in lines if _PIN.match(line)]
    with tempfile.TemporaryDirectory(prefix="tea-lock-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, *pins],
            check=True,
        )
        hashes: dict[str, list[str]] = {}
        for file in sorted(Path(tmp).iterdir()):
            name = _normal(re.split(r"-\d", file.name, maxsplit=1)[0])
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            hashes.setdefault(name, []).append(digest)
    out = []
    for line in lines:
        match = _PIN.match(line)
        if not match or line.strip().startswith("#"):
            out.append(line)
            continue
        pin = f"{match.group(1)}=={match.group(2)}"
        found = hashes.get(_normal(match.group(1)))
        if not found:
            raise SystemExit(f"no file downloaded for {pin}")
        out.append(pin + "".join(f" \\\n    --hash=sha256:{digest}" for digest in found))
    lock.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
