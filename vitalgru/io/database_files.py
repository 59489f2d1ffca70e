"""The files of one PhysioNet database folder, made present and verified before they are read.

A local folder (a mirror, any folder of WFDB files) is only read; one backed by a
PhysioNet URL downloads what it lacks into the folder, each file checked against the
database's ``SHA256SUMS.txt`` before it is moved into place, and a file the server does
not publish is asked for only once. :class:`~vitalgru.io.physionet.Database` adds the
records (listing, their files, reading them) on top.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import TypedDict

from vitalgru.errors import ChecksumError, DownloadError, RecordError
from vitalgru.io.checksums import VerifiedState, parse_sha256sums
from vitalgru.io.download import HttpFetcher, HttpStatusError
from vitalgru.io.fetch_report import FetchReport
from vitalgru.io.listing import read_listing

logger = logging.getLogger(__name__)

__all__ = ["DatabaseFiles", "FilesOptions"]

_SUMS = "SHA256SUMS.txt"
_ABSENT_SUFFIX = ".absent"  # marker: the server publishes no such file (remote only)


class FilesOptions(TypedDict, total=False):
    """The keyword arguments of :class:`DatabaseFiles`, for a class built on it to pass on."""

    url: str | None
    fetcher: HttpFetcher | None
    state: VerifiedState | None
    verify_checksums: bool
    version: str | None


class DatabaseFiles:
    """The files of a database folder, optionally backed by a PhysioNet URL.

    Parameters
    ----------
    name : str
        Database name (``"mitdb"``) or folder name.
    root : Path
        Local folder holding (or receiving) the files.
    url : str, optional
        ``<base>/<db>/<version>/`` to download missing files from; ``None`` for a
        mirror or folder, whose files are only read.
    fetcher : HttpFetcher, optional
        Needed when ``url`` is given.
    state : VerifiedState
        Verification memory for ``root``.
    verify_checksums : bool
        Check files against ``SHA256SUMS.txt`` before they are used.
    version : str, optional
        Database version, when known.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        url: str | None = None,
        fetcher: HttpFetcher | None = None,
        state: VerifiedState | None = None,
        verify_checksums: bool = True,
        version: str | None = None,
    ) -> None:
        if url is not None and fetcher is None:
            raise ValueError("a remote database needs a fetcher")
        self.name = name
        self.version = version
        self.root = Path(root)
        self.url = url
        self.verify_checksums = verify_checksums
        self._fetcher = fetcher
        self._state = state or VerifiedState(self.root, None)
        self._sums: dict[str, str] | None = None

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def _meta_file(self, name: str, optional: bool) -> Path | None:
        """Local path of a database-level file, downloading it once when remote.

        ``None`` when a local copy lacks it, or when an ``optional`` file is not
        published (a 404, remembered in a marker file so it is asked for only once).
        """
        path = self.root / name
        if path.is_file():
            return path
        if not self.is_remote:
            return None
        marker = self.root / (name + _ABSENT_SUFFIX)
        if optional and marker.exists():
            return None
        fetcher, url = self._remote()
        # RECORDS has its published digest like any file (so a server's error page is not
        # kept as the record list for good); the checksum list itself is checked by parsing
        digest = None if name == _SUMS else self.checksums().get(name)
        try:
            fetcher.download(url + name, path, sha256=digest)
        except HttpStatusError as e:
            if e.status != 404:
                raise
            if not optional:
                raise DownloadError(
                    f"{e}; is {self.name!r} version {self.version!r} published at {url}?"
                ) from e
            self.root.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{url + name} answered 404\n")
            return None
        return path

    def checksums(self) -> dict[str, str]:
        """Relative path -> SHA-256 from ``SHA256SUMS.txt``; empty when none is published.

        A list that is not one, or not UTF-8 text, is a ``ValueError`` naming its line
        (a ``DownloadError`` when downloaded: it is not kept)."""
        if self._sums is None:
            path = self._meta_file(_SUMS, optional=True)
            try:
                self._sums = parse_sha256sums(read_listing(path), str(path)) if path else {}
            except ValueError as e:
                if not self.is_remote:
                    raise
                # a downloaded list that is not one (an error page served with 200) is not
                # kept: the next try asks for it again (kept, every later run failed on it)
                path.unlink(missing_ok=True)
                raise DownloadError(f"{self.url}{_SUMS} is not a checksum list ({e})") from e
            if not self._sums:
                logger.info(
                    "%s: no %s at %s; its files are not verified",
                    self.name,
                    _SUMS,
                    self.url or self.root,
                )
        return self._sums

    def _remote(self) -> tuple[HttpFetcher, str]:
        if self._fetcher is None or self.url is None:
            raise RuntimeError(f"{self!r} is not a remote database")
        return self._fetcher, self.url

    def _ensure(self, rel: str, required: bool, report: FetchReport | None = None) -> bool:
        """Make ``rel`` present (and verified, when configured).

        Returns True when it is, False when an optional (annotation) file is not
        published. Raises DownloadError, ChecksumError or RecordError otherwise.
        """
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
            # Names come from RECORDS and headers, i.e. from the server: never let them
            # address files outside the database folder.
            raise RecordError(rel, "file name escapes the database folder", "unsafe_path")
        sums = self.checksums() if (self.verify_checksums or self.is_remote) else {}
        expected = sums.get(rel) if self.verify_checksums else None
        path = self.root / rel
        if path.is_file():
            if not self.verify_checksums:
                return True
            try:
                self._state.verify(rel, expected)
                return True
            except ChecksumError:
                if not self.is_remote:
                    raise
                logger.warning("%s: cached copy fails its checksum; downloading again", path)
                path.unlink()
                self._state.forget(rel)
        if not self.is_remote:
            if required:
                raise RecordError(path, "file is missing from the local copy", "missing_file")
            if rel in sums:
                raise RecordError(
                    path,
                    f"annotation file listed in {_SUMS} is missing from the local copy",
                    "missing_annotations",
                )
            return False
        if sums and rel not in sums and not required:
            return False  # the database does not publish it
        marker = self.root / (rel + _ABSENT_SUFFIX)
        if not required and marker.exists():
            return False
        fetcher, url = self._remote()
        try:
            digest = fetcher.download(url + rel, path, expected)
        except HttpStatusError as e:
            if e.status == 404 and not required and not sums:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{url + rel} answered 404\n")
                return False
            raise
        self._state.record(rel, digest)
        if report is not None:
            report.downloaded.append(rel)
        return True
