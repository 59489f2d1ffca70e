"""Downloads from a local HTTP server in PhysioNet's layout: verification, resume,
no second fetch, retries and errors that name the URL."""

from __future__ import annotations

import filecmp
import hashlib
import http.server
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from http_testkit import closed_port, status_server

from benchmarks.physionet_http import PhysioNetHTTPServer
from vitalgru.config import PhysioNetConfig
from vitalgru.errors import ChecksumError, DownloadError
from vitalgru.io import HttpFetcher, open_database
from vitalgru.io.checksums import parse_sha256sums
from vitalgru.io.download import server_unreachable

DB = "mitdb/1.0.0"
TINY = 0.001  # back-off in tests, seconds


def _gets(server: PhysioNetHTTPServer, name: str) -> list:
    return [r for r in server.requests if r.path == f"{DB}/{name}" and r.method == "GET"]


def _corrupt_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


class TestFetch:
    def test_downloads_verifies_and_reads(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig, mitdb_dir: Path
    ) -> None:
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        assert db.is_remote and db.url == f"{server.base_url}{DB}/"
        assert db.list_records() == ["100", "101"]
        report = db.fetch()
        assert report.complete
        files = [f"{r}.{e}" for r in ("100", "101") for e in ("hea", "dat", "atr")]
        assert sorted(report.ok) == sorted(files) and sorted(report.downloaded) == sorted(files)
        for f in files:
            assert filecmp.cmp(db.root / f, mitdb_dir / f, shallow=False)
        assert db.root == remote_cfg.cache_dir / "mitdb" / "1.0.0"
        assert not list(db.root.glob("*.part"))
        assert db.read_record("101").channels == ("MLII", "V1")
        assert len(db.read_annotations("100")) == 2274
        # No transparent gzip: ranges and lengths must count the file's own bytes.
        assert {r.accept_encoding for r in server.requests} == {"identity"}

    def test_a_folder_line_in_records_fetches_that_folders_records(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        # PhysioNet's nested layout (mimic3wdb-matched: RECORDS lists p00/, p00/RECORDS
        # lists p000020/, ...) is expanded as wfdb.dl_database does; 'ward2/' was a record
        served = served_root / DB
        (served / "ward2").mkdir()
        for ext in ("hea", "dat", "atr"):
            (served / f"101.{ext}").rename(served / "ward2" / f"101.{ext}")
        (served / "RECORDS").write_text("100\nward2/\n")
        (served / "ward2" / "RECORDS").write_text("101\n")
        sums = [
            f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(served).as_posix()}"
            for f in sorted(served.rglob("*"))
            if f.is_file() and f.name != "SHA256SUMS.txt"
        ]
        (served / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        assert db.list_records() == ["100", "ward2/101"]
        assert [r.method for r in _gets(server, "ward2/RECORDS")] == ["GET"]
        assert db.fetch().complete
        assert db.read_record("ward2/101").channels == ("MLII", "V1")
        assert (db.root / "ward2" / "101.atr").is_file()

    def test_second_fetch_makes_no_request(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        open_database("mitdb", remote_cfg, backoff_s=TINY).fetch()
        server.clear_log()
        again = open_database("mitdb", remote_cfg, backoff_s=TINY)  # fresh object, state on disk
        report = again.fetch()
        assert report.complete and report.downloaded == [] and len(report.ok) == 6
        again.read_record("100")
        again.read_annotations("101")
        assert server.requests == []

    def test_read_record_downloads_only_what_it_needs(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        assert db.read_record("100").n_samples == 650000
        got = sorted(r.path.rsplit("/", 1)[1] for r in server.requests)
        assert got == ["100.dat", "100.hea", "RECORDS", "SHA256SUMS.txt"]

    def test_checksum_mismatch_is_reported_and_not_kept(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        _corrupt_byte(served_root / DB / "101.dat")
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        report = db.fetch()
        assert [(f.file, f.reason, f.record) for f in report.failures] == [
            ("101.dat", "checksum_mismatch", "101")
        ]
        assert report.failed_records == ["101"]
        assert [(a.item, a.stage) for a in report.attrition()] == [("101", "verify")]
        assert "100.dat" in report.ok and "101.atr" in report.ok
        assert not (db.root / "101.dat").exists() and not (db.root / "101.dat.part").exists()
        with pytest.raises(ChecksumError, match="101.dat"):
            db.read_record("101")

    def test_resumes_from_part_file_with_range_request(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig, mitdb_dir: Path
    ) -> None:
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        half = (mitdb_dir / "100.dat").stat().st_size // 2
        db.root.mkdir(parents=True)
        (db.root / "100.dat.part").write_bytes((mitdb_dir / "100.dat").read_bytes()[:half])
        report = db.fetch(["100"])
        assert report.complete
        (get,) = _gets(server, "100.dat")
        assert get.range == f"bytes={half}-" and get.status == 206
        assert filecmp.cmp(db.root / "100.dat", mitdb_dir / "100.dat", shallow=False)

    def test_interrupted_transfer_is_resumed(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig, mitdb_dir: Path
    ) -> None:
        server.cut_next(f"{DB}/100.dat", 700_000)
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        report = db.fetch(["100"])
        assert report.complete, report.failures
        first, second = _gets(server, "100.dat")
        assert first.range is None and first.status == 200
        assert second.status == 206 and second.range is not None
        start = int(second.range.removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= 700_000  # only the missing tail was asked for
        assert filecmp.cmp(db.root / "100.dat", mitdb_dir / "100.dat", shallow=False)

    def test_a_file_another_process_is_downloading_is_waited_for_not_fetched_twice(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig, mitdb_dir: Path
    ) -> None:
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        db.root.mkdir(parents=True)
        dest = db.root / "100.dat"
        code = ("import shutil, sys, time; from vitalgru.claims import hold\n"
                f"with hold({str(dest) + '.lock'!r}, 'x'):\n"
                "    print('held', flush=True); time.sleep(1.5)\n"
                f"    shutil.copy({str(mitdb_dir / '100.dat')!r}, {str(dest)!r})")  # fmt: skip
        other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "held"
            report = db.fetch(["100"])
        finally:
            other.wait(30)
        assert report.complete
        assert _gets(server, "100.dat") == []  # two appending to one .part mixed their bytes
        assert filecmp.cmp(dest, mitdb_dir / "100.dat", shallow=False)
        assert not list(db.root.glob("*.lock")) and not list(db.root.glob("*.part"))

    def test_stale_corrupt_cache_copy_is_replaced(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig, mitdb_dir: Path
    ) -> None:
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        db.fetch(["100"])
        _corrupt_byte(db.root / "100.atr", 10)
        server.clear_log()
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch(["100"])
        assert report.complete and report.downloaded == ["100.atr"]
        assert filecmp.cmp(db.root / "100.atr", mitdb_dir / "100.atr", shallow=False)

    def test_missing_file_on_server(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        (served_root / DB / "101.dat").unlink()
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        report = db.fetch()
        (fail,) = report.failures
        assert fail.file == "101.dat" and fail.reason == "download_failed"
        assert f"{server.base_url}{DB}/101.dat" in fail.detail and "404" in fail.detail
        assert len(_gets(server, "101.dat")) == 1  # a 404 is permanent: not retried
        with pytest.raises(DownloadError, match="101.dat"):
            db.read_record("101")

    def test_unpublished_annotations_are_skipped_without_a_request(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        sums = served_root / DB / "SHA256SUMS.txt"
        sums.write_text(
            "".join(ln + "\n" for ln in sums.read_text().splitlines() if "101.atr" not in ln)
        )
        (served_root / DB / "101.atr").unlink()
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch()
        assert report.complete and report.skipped == ["101.atr"]
        assert _gets(server, "101.atr") == []

    def test_database_without_checksums(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        (served_root / DB / "SHA256SUMS.txt").unlink()
        (served_root / DB / "101.atr").unlink()
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch()
        assert report.complete and report.skipped == ["101.atr"] and len(report.ok) == 5
        server.clear_log()
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch()
        assert report.complete and report.downloaded == [] and server.requests == []

    def test_a_record_or_checksum_list_that_is_an_error_page_is_not_kept(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        # a server answering one request with an error page and status 200: the page was
        # kept as SHA256SUMS.txt or RECORDS for good, and every later run failed on it (or
        # ingested the page's lines as records)
        sums, records = served_root / DB / "SHA256SUMS.txt", served_root / DB / "RECORDS"
        good_sums, good_records = sums.read_text(), records.read_bytes()
        page = "<!DOCTYPE html>\n<html><body>Try later</body></html>\n"
        sums.write_text(page)
        with pytest.raises(DownloadError, match="SHA256SUMS.txt is not a checksum list"):
            open_database("mitdb", remote_cfg, backoff_s=TINY).checksums()
        sums.write_text(good_sums + f"{hashlib.sha256(good_records).hexdigest()}  RECORDS\n")
        records.write_text(page)
        with pytest.raises(ChecksumError, match="RECORDS"):
            open_database("mitdb", remote_cfg, backoff_s=TINY).list_records()
        records.write_bytes(good_records)  # the server mended: the next run reads both
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        assert db.list_records() == ["100", "101"] and db.fetch().complete

    def test_a_file_listed_twice_with_two_digests_is_refused(self) -> None:
        # sha256sum -c would fail one of the lines; kept last, the order decided
        one, two = "a" * 64, "b" * 64
        with pytest.raises(ValueError, match="line 2: 100.dat is listed before with another"):
            parse_sha256sums(f"{one}  100.dat\n{two} *./100.dat\n")
        assert parse_sha256sums(f"{one}  100.dat\n{one} *./100.dat\n") == {"100.dat": one}

    def test_names_from_the_server_cannot_escape_the_cache(
        self, served_root: Path, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        (served_root / DB / "RECORDS").write_text("100\n../../evil\n")
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch()
        assert [(f.record, f.reason) for f in report.failures] == [("../../evil", "unsafe_path")]
        assert "100.dat" in report.ok
        assert not any(r.path.endswith("evil.hea") for r in server.requests)


class TestRetries:
    def test_transient_errors_are_retried(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        server.fail_next(f"{DB}/100.hea", 503, times=2)  # retries=2: third attempt succeeds
        report = open_database("mitdb", remote_cfg, backoff_s=TINY).fetch(["100"])
        assert report.complete
        assert [r.status for r in _gets(server, "100.hea")] == [503, 503, 200]

    def test_backoff_comes_from_the_config(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        server.fail_next(f"{DB}/100.hea", 503, times=2)
        cfg = remote_cfg.model_copy(update={"backoff_s": 0.3})
        t0 = time.perf_counter()
        assert open_database("mitdb", cfg).fetch(["100"]).complete
        assert time.perf_counter() - t0 >= 0.3 + 0.6  # waits 0.3 s, then 0.6 s

    def test_gives_up_after_retries(
        self, server: PhysioNetHTTPServer, remote_cfg: PhysioNetConfig
    ) -> None:
        server.fail_next(f"{DB}/100.hea", 503, times=10)
        db = open_database("mitdb", remote_cfg, backoff_s=TINY)
        with pytest.raises(DownloadError, match=r"100\.hea.*3 attempts"):
            db.read_record("100")
        assert len(_gets(server, "100.hea")) == 3

    def test_unreachable_server(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("VITALGRU_PHYSIONET_MIRROR", raising=False)
        port = closed_port()
        cfg = PhysioNetConfig(
            base_url=f"http://127.0.0.1:{port}/", cache_dir=tmp_path, retries=2, timeout_s=2.0
        )
        db = open_database("mitdb", cfg, backoff_s=TINY)
        with pytest.raises(DownloadError) as e:
            db.list_records()
        msg = str(e.value)
        # the checksum list is asked for first (it holds RECORDS' digest)
        assert f"http://127.0.0.1:{port}/mitdb/1.0.0/SHA256SUMS.txt" in msg and "3 attempts" in msg


class TestHttpFetcher:
    def test_complete_part_file_is_not_fetched_again(
        self, server: PhysioNetHTTPServer, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # A .part that already holds every byte: the server answers 416 to the range.
        dest = tmp_path / "100.hea"
        (tmp_path / "100.hea.part").write_bytes((mitdb_dir / "100.hea").read_bytes())
        fetcher = HttpFetcher(retries=1, timeout_s=5, backoff_s=TINY)
        fetcher.download(f"{server.base_url}{DB}/100.hea", dest)
        assert dest.read_bytes() == (mitdb_dir / "100.hea").read_bytes()
        assert [r.status for r in _gets(server, "100.hea")] == [416]

    def test_foreign_part_file_is_replaced(
        self, server: PhysioNetHTTPServer, tmp_path: Path, mitdb_dir: Path
    ) -> None:
        # A .part from some other file: the resumed result fails its checksum, and one
        # fresh download is made before giving up.
        want = hashlib.sha256((mitdb_dir / "100.hea").read_bytes()).hexdigest()
        (tmp_path / "100.hea.part").write_bytes(b"garbage")
        fetcher = HttpFetcher(retries=0, timeout_s=5, backoff_s=TINY)
        fetcher.download(f"{server.base_url}{DB}/100.hea", tmp_path / "100.hea", want)
        assert (tmp_path / "100.hea").read_bytes() == (mitdb_dir / "100.hea").read_bytes()
        assert [r.status for r in _gets(server, "100.hea")] == [206, 200]

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(ValueError, match="retries"):
            HttpFetcher(retries=-1)


class TestNames:
    def test_unknown_database_needs_a_version(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("VITALGRU_PHYSIONET_MIRROR", raising=False)
        cfg = PhysioNetConfig(cache_dir=tmp_path)
        with pytest.raises(ValueError, match="'foodb/<version>'"):
            open_database("foodb", cfg)
        db = open_database("foodb/2.1.0", cfg)
        assert db.url == "https://physionet.org/files/foodb/2.1.0/" and db.version == "2.1.0"
        for name in ("svdb", "incartdb", "ltdb", "nstdb"):
            assert open_database(name, cfg).url == f"https://physionet.org/files/{name}/1.0.0/"


class TestMirrorServer:
    def test_serves_a_mirror_in_physionet_layout(
        self, physionet_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("VITALGRU_PHYSIONET_MIRROR", raising=False)
        with PhysioNetHTTPServer.for_mirror(physionet_mirror, {"mitdb": "1.0.0"}) as srv:
            cfg = PhysioNetConfig(base_url=srv.base_url, cache_dir=tmp_path, retries=0)
            db = open_database("mitdb", cfg, backoff_s=TINY)
            assert len(db.list_records()) == 48
            assert db.fetch(["100", "201"], workers=2).complete
            assert f"{DB}/201.dat" in {r.path for r in srv.requests}
            with pytest.raises(DownloadError, match="404"):
                open_database("mitdb/9.9.9", cfg, backoff_s=TINY).list_records()


class TestServerAnswers:
    def test_a_server_that_comes_up_between_tries_is_found(self) -> None:
        port = closed_port()
        url = f"http://127.0.0.1:{port}/health"
        assert "refused" in (server_unreachable(url, attempts=1) or "")

        started = threading.Event()
        ready: list[http.server.HTTPServer] = []

        def start_late() -> None:
            time.sleep(0.3)
            ready.append(status_server(503, port))
            started.set()
            ready[0].serve_forever()

        threading.Thread(target=start_late, daemon=True).start()
        try:
            # refused at first, then an HTTP error status: an answer all the same
            assert server_unreachable(url, attempts=20, wait_s=0.1) is None
        finally:
            if started.wait(5):
                ready[0].shutdown()
                ready[0].server_close()
