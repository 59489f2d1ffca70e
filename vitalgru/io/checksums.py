"""SHA-256 checks against a database's published ``SHA256SUMS.txt``, hashed once.

PhysioNet publishes ``<base>/<db>/<version>/SHA256SUMS.txt`` (``sha256sum`` output:
``<64 hex>  <relative path>`` per line). Hashing a 2 MB ``.dat`` costs a few
milliseconds, a whole database a second or two; :class:`VerifiedState` remembers, per
file, the size and modification time at which it last hashed to its published digest, so
a second ingest of the same folder re-hashes nothing unless a file changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from vitalgru.claims import replace_file
from vitalgru.errors import ChecksumError

logger = logging.getLogger(__name__)

__all__ = ["VerifiedState", "parse_sha256sums", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def parse_sha256sums(text: str, source: str = "SHA256SUMS.txt") -> dict[str, str]:
    """Map relative file path -> lower-case hex digest from ``sha256sum`` output.

    Accepts text mode (``<hex>  <name>``) and binary mode (``<hex> *<name>``) lines;
    blank lines are skipped.

    Raises
    ------
    ValueError
        A line that is not ``<64 hex digits> <name>``, or a file listed twice with two
        digests; the message names ``source`` and the line number.
    """
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{source} line {n}: expected '<sha256 hex>  <file>', got {line!r}")
        name = parts[1].strip()
        if name.startswith("*"):
            name = name[1:]
        name = name.removeprefix("./")
        if out.get(name, digest) != digest:
            # sha256sum -c checks every line, so two digests for one file fail one of
            # them; kept last, the result depended on the lines' order
            raise ValueError(f"{source} line {n}: {name} is listed before with another digest")
        out[name] = digest
    return out


class VerifiedState:
    """Per-folder record of files already hashed to their published digest.

    Entries are ``relative path -> {"size", "mtime_ns", "sha256"}``; a file counts as
    verified while its size and modification time are unchanged and the stored digest
    equals the expected one. Persisted as JSON at ``state_path`` (written atomically; a
    lost update between two concurrent writers only costs a re-hash). ``state_path=None``
    keeps the state in memory only, e.g. when no writable location exists.

    Parameters
    ----------
    root : Path
        Folder the relative paths refer to.
    state_path : Path or None
        JSON file holding the state.
    """

    def __init__(self, root: Path, state_path: Path | None) -> None:
        self.root = Path(root)
        self.state_path = state_path
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, int | str]] = {}
        self._dirty = False
        if state_path is not None and state_path.is_file():
            try:
                data = json.loads(state_path.read_text())
                if data.get("root") == str(self.root):
                    self._entries = dict(data.get("files", {}))
            except (OSError, ValueError, AttributeError) as e:
                logger.warning("ignoring unreadable verification state %s: %s", state_path, e)

    def is_verified(self, rel: str, expected: str | None) -> bool:
        """True when ``rel`` was hashed before, is unchanged, and matched ``expected``
        (or, with no published digest, simply unchanged since it was recorded)."""
        entry = self._entries.get(rel)
        if entry is None:
            return False
        try:
            st = (self.root / rel).stat()
        except OSError:
            return False
        if entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
            return False
        return expected is None or entry.get("sha256") == expected

    def verify(self, rel: str, expected: str | None) -> str:
        """Hash ``rel`` unless already verified; raise on mismatch; return the digest.

        Raises
        ------
        ChecksumError
            The file's SHA-256 differs from ``expected``.
        FileNotFoundError
            The file does not exist.
        """
        if self.is_verified(rel, expected):
            return str(self._entries[rel]["sha256"])
        path = self.root / rel
        st = path.stat()
        digest = sha256_file(path)
        if expected is not None and digest != expected:
            self.forget(rel)
            raise ChecksumError(path, expected, digest)
        self.record(rel, digest, st)
        return digest

    def record(self, rel: str, digest: str, st: os.stat_result | None = None) -> None:
        """Remember that ``rel`` (as it is now) has SHA-256 ``digest``."""
        st = st or (self.root / rel).stat()
        with self._lock:
            self._entries[rel] = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": digest,
            }
            self._dirty = True

    def forget(self, rel: str) -> None:
        with self._lock:
            if self._entries.pop(rel, None) is not None:
                self._dirty = True

    def save(self) -> None:
        """Write the state atomically if it changed; a failure to write is logged, not raised."""
        if self.state_path is None or not self._dirty:
            return
        with self._lock:
            payload = {"root": str(self.root), "files": dict(sorted(self._entries.items()))}
            self._dirty = False
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.state_path, json.dumps(payload, indent=0))
        except OSError as e:
            logger.warning("cannot save verification state to %s: %s", self.state_path, e)
