"""The ingest flow end to end on real MIT-BIH records: with Prefect's temporary local
server, and against a real ``prefect server start`` on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml
from claim_kit import folder_held_by_another_process
from http_testkit import closed_port

import pipelines.ingest as ingest_module
from benchmarks.physionet_http import PhysioNetHTTPServer, build_physionet_tree
from pipelines.ingest import _record_key, _worth_retrying, ingest_flow
from vitalgru import claims
from vitalgru.claims import ClaimBusy
from vitalgru.data.dataset_files import processing_digest
from vitalgru.errors import ChecksumError, DownloadError, UnknownDatabaseError

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ["100", "101", "105", "119"]  # two DS1, two DS2; 105 is noisy

# de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7) 2004, table II (AAMI classes per split).
PUBLISHED_COUNTS = {
    "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
    "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
}


def _cli_env(mirror: Path, home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VITALGRU_PHYSIONET_MIRROR=str(mirror),
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="true",
        **extra,
    )
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


def _api(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call of Prefect's REST API, its JSON answer; retried as Prefect's own client
    retries (429, 502, 503: the server answers 503 while its SQLite file is locked, as it is
    on a loaded machine), any other failure shown with its body."""
    for attempt in range(8):
        r = requests.request(method, f"{api}{path}", json=body, timeout=10)
        if r.status_code not in (429, 502, 503):
            break
        time.sleep(min(2.0**attempt, 10.0))
    assert r.ok, (method, path, r.status_code, r.text[:2000])
    return r.json()


class TestIngestFlow:
    def test_subset_with_temporary_server(
        self, physionet_mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("VITALGRU_PHYSIONET_MIRROR", str(physionet_mirror))
        out = tmp_path / "ds"
        res = ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))
        manifest = json.loads((out / "manifest.json").read_text())
        assert sorted(manifest["splits"]["DS1"]) == ["101", "119"]
        assert sorted(manifest["splits"]["DS2"]) == ["100", "105"]
        assert res["class_counts"] == manifest["class_counts"]
        beats = pd.read_parquet(out / "beats.parquet")
        assert len(beats) == manifest["n_beats"] > 7000
        # 100: 2,239 N + 33 S + 1 V (reference annotations).
        c100 = beats[beats.record_id == "100"].aami.value_counts().to_dict()
        assert c100 == {"N": 2239, "S": 33, "V": 1}
        attrition = pd.read_csv(out / "attrition.csv")
        assert list(attrition.columns) == ["database", "item", "stage", "reason", "detail"]
        # The noisy record has flagged windows; the clean one has (almost) none.
        facts = manifest["records"]
        assert facts["105"]["quality_flagged_windows"] > facts["100"]["quality_flagged_windows"]
        # ... and so do its beats' live verdicts, which mostly agree with the offline flags.
        bad = beats.groupby("record_id").signal_ok.apply(lambda s: int((~s).sum()))
        assert bad["105"] == facts["105"]["signal_bad_beats"] > 100 > bad["100"]
        assert (beats.signal_ok == beats.quality_ok).mean() > 0.9
        # A second run reuses the cached per-record parts: nothing is rewritten.
        parts = sorted((out / ".parts").iterdir())
        stamps = {p.name: (p / "facts.json").stat().st_mtime_ns for p in parts}
        ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))
        assert {p.name: (p / "facts.json").stat().st_mtime_ns for p in parts} == stamps
        # A part deleted behind the cache's back is recomputed, not trusted.
        shutil.rmtree(parts[0])
        res2 = ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))
        assert (parts[0] / "facts.json").exists()
        assert res2["class_counts"] == manifest["class_counts"]
        assert manifest["processing_digest"] == processing_digest()
        # Parts of this code under another config stay cached beside them.
        ingest_flow(overrides={"arrhythmia.records": RECORDS[:1], "arrhythmia.windows.before_s": 0.3},
                    out_dir=str(out))  # fmt: skip
        other = sorted(set((out / ".parts").iterdir()) - set(parts))
        assert len(other) == 1 and set(parts) < set((out / ".parts").iterdir())
        # Parts made by other processing code (a fix since, under the same version) are
        # not reused: each record is processed again, into a part of its own, and the
        # parts of the old code, which no key can name again, are removed.
        monkeypatch.setattr(ingest_module, "processing_digest", lambda: "0" * 16)
        ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))
        now = sorted((out / ".parts").iterdir())
        assert len(now) == len(parts) and not set(parts) & set(now)
        assert all(json.loads((p / "facts.json").read_text())["processing_digest"] == "0" * 16
                   for p in now)  # fmt: skip
        assert json.loads((out / "manifest.json").read_text())["processing_digest"] == "0" * 16
        # Another process writing the folder (an ingest of the nightly deployment) is
        # waited for, not written over; with no wait left, the ingest says who holds it.
        with folder_held_by_another_process(out, seconds=3):
            t0 = time.monotonic()
            ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))
            assert time.monotonic() - t0 > 1.5
        with folder_held_by_another_process(out, seconds=30) as pid:
            monkeypatch.setattr(claims, "FOLDER_WAIT_S", 0.5)
            with pytest.raises(ClaimBusy, match=rf"dataset folder .*process {pid}, holding"):
                ingest_flow(overrides={"arrhythmia.records": RECORDS}, out_dir=str(out))


def _bad_mirror(src: Path, root: Path) -> Path:
    """A mitdb copy with four records: 100 and 101 intact, 103.dat and 103.atr corrupted
    in place (same size: only the checksum can tell) and 103 listed twice in RECORDS,
    105.dat truncated and unlisted in SHA256SUMS.txt (only the header-versus-size check
    can tell)."""
    db = root / "mitdb"
    db.mkdir(parents=True)
    records = ["100", "101", "103", "105"]
    for r in records:
        for ext in ("hea", "dat", "atr"):
            shutil.copy(src / f"{r}.{ext}", db / f"{r}.{ext}")
    sums = [ln for ln in (src / "SHA256SUMS.txt").read_text().splitlines()
            if ln.split()[-1].split(".")[0] in {"100", "101", "103"}]  # fmt: skip
    (db / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
    (db / "RECORDS").write_text("\n".join([*records, "103"]) + "\n")  # 103 listed twice
    for name in ("103.dat", "103.atr"):  # two of its files bad: still one record refused
        raw = bytearray((db / name).read_bytes())
        raw[1000:1010] = bytes(10)
        (db / name).write_bytes(bytes(raw))
    dat = (db / "105.dat").read_bytes()
    (db / "105.dat").write_bytes(dat[: len(dat) // 2])
    return root


class TestIngestBadInput:
    def test_bad_records_go_to_attrition_and_the_rest_is_ingested(
        self, mitdb_dir: Path, tmp_path: Path
    ) -> None:
        mirror = _bad_mirror(mitdb_dir, tmp_path / "mirror")
        out = tmp_path / "ds"
        res = ingest_flow(overrides={"physionet.mirror": str(mirror)}, out_dir=str(out))
        manifest = json.loads((out / "manifest.json").read_text())
        assert sorted(manifest["records"]) == ["100", "101"]
        att = pd.read_csv(out / "attrition.csv", dtype=str).set_index("item")
        assert att.loc["103", "reason"] == "checksum_mismatch"
        assert att.loc["105", "reason"] == "truncated_dat"
        assert "105.dat" in att.loc["105", "detail"]
        assert res["attrition"] == manifest["attrition"] == len(att) == 2
        # what was good is all there: 100 has 2,273 beats, 101 has 1,865
        assert manifest["n_beats"] == 2273 + 1865

    def test_a_mended_signal_file_of_any_name_is_read_again(
        self, mitdb_dir: Path, tmp_path: Path
    ) -> None:
        # WFDB lets a header name its signal file anything; the part (and a cached
        # refusal) was keyed on the files called 100.<ext> alone, so the refusal of a cut
        # 100_sig.dat was served again after the file was mended
        db = tmp_path / "mirror" / "mitdb"
        db.mkdir(parents=True)
        shutil.copy(mitdb_dir / "100.atr", db / "100.atr")
        hea = (mitdb_dir / "100.hea").read_text().replace("100.dat", "100_sig.dat")
        (db / "100.hea").write_text(hea)
        (db / "RECORDS").write_text("100\n")
        good = (mitdb_dir / "100.dat").read_bytes()
        (db / "100_sig.dat").write_bytes(good[: len(good) // 2])
        ov = {"physionet.mirror": str(db.parent), "arrhythmia.records": ["100"]}
        out = tmp_path / "ds"
        with pytest.raises(ValueError, match="attrition.csv"):
            ingest_flow(overrides=ov, out_dir=str(out))
        (db / "100_sig.dat").write_bytes(good)
        ingest_flow(overrides=ov, out_dir=str(out))
        assert list(json.loads((out / "manifest.json").read_text())["records"]) == ["100"]


@pytest.fixture(scope="class")
def prefect_api(
    physionet_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A real ``prefect server start`` on 127.0.0.1: its API URL and its PREFECT_HOME."""
    port = closed_port()
    home = tmp_path_factory.mktemp("prefect-home")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=_cli_env(physionet_mirror, home), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{api}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("prefect server did not become healthy within 120 s")
            time.sleep(1)
        yield api, home
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.server
class TestIngestAgainstPrefectServer:
    def test_full_default_ingest_on_real_server(
        self, physionet_mirror: Path, tmp_path: Path, prefect_api: tuple[str, Path]
    ) -> None:
        api, home = prefect_api
        env = _cli_env(physionet_mirror, home)
        # The default config end to end through the CLI, from another directory:
        # MIT-BIH, de Chazal split; the manifest must carry the published counts.
        out = tmp_path / "ds"
        run = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "ingest", "--out", str(out)],
            env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True,
            timeout=900, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["class_counts"] == PUBLISHED_COUNTS
        assert len(manifest["splits"]["DS1"]) == len(manifest["splits"]["DS2"]) == 22
        runs = _api(api, "POST", "/flow_runs/filter", {})
        ingest_runs = [r for r in runs if r["state_type"] == "COMPLETED"]
        assert ingest_runs, runs
        flows = _api(api, "POST", "/flows/filter", {})
        assert "ingest" in {f["name"] for f in flows}

    def test_the_worker_script_deploys_the_schedules_and_runs_them(
        self, physionet_mirror: Path, tmp_path: Path, prefect_api: tuple[str, Path]
    ) -> None:
        # docker/worker.sh is the compose stack's worker: it creates the work pool,
        # registers prefect.yaml's deployments and polls. Here it runs outside a
        # container, from a copy of the files the image holds beside the installed package
        # (the deployments import the flows from it: no source folder is needed).
        api, home = prefect_api
        app = tmp_path / "app"
        shutil.copytree(
            ROOT / "docker", app / "docker", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy(ROOT / "prefect.yaml", app / "prefect.yaml")
        env = _cli_env(physionet_mirror, home, PREFECT_API_URL=api)
        # the script calls `prefect` as the container's PATH has it
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        worker = [str(app / "docker" / "worker.sh"), "--run-once"]

        def run_worker() -> None:
            out = subprocess.run(
                ["sh", *worker], env=env, cwd=tmp_path, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])

        run_worker()
        declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
        deps = _api(api, "POST", "/deployments/filter", {})
        assert {d["name"]: (d["entrypoint"], [s["schedule"]["cron"] for s in d["schedules"]],
                            d["work_pool_name"]) for d in deps} == {
            d["name"]: (d["entrypoint"], [s["cron"] for s in d["schedules"]],
                        d["work_pool"]["name"]) for d in declared
        }  # fmt: skip
        # A run of the nightly ingest, asked for now on two records, is picked up and
        # run by the worker's next poll.
        ingest = next(d for d in deps if d["name"] == "ingest-mitdb-nightly")
        out_dir = tmp_path / "ds"
        params = {"overrides": {"arrhythmia.records": ["100", "101"]}, "out_dir": str(out_dir)}
        # Each deployment runs one flow run at a time (prefect.yaml): asked twice at once,
        # the second run waits in Prefect's queue until the first has finished.
        assert {d["name"]: (d["global_concurrency_limit"]["limit"],
                            d["concurrency_options"]["collision_strategy"]) for d in deps} == {
            d["name"]: (1, "ENQUEUE") for d in declared
        }  # fmt: skip
        runs = [
            _api(api, "POST", f"/deployments/{ingest['id']}/create_flow_run",
                 {"parameters": params})["id"]
            for _ in range(2)
        ]  # fmt: skip

        def states() -> list[dict[str, Any]]:
            return [_api(api, "GET", f"/flow_runs/{r}") for r in runs]

        run_worker()
        first = sorted(states(), key=lambda st: st["state_type"])
        assert [(st["state_type"], st["state_name"]) for st in first] == [
            ("COMPLETED", "Completed"), ("SCHEDULED", "AwaitingConcurrencySlot"),
        ]  # fmt: skip
        # the waiting run is put back on the schedule a little later; the worker's next
        # poll after that runs it
        again = datetime.fromisoformat(first[1]["state"]["state_details"]["scheduled_time"])
        time.sleep(max(0.0, (again - datetime.now(UTC)).total_seconds()))
        run_worker()
        done, waited = sorted(states(), key=lambda st: st["start_time"])
        assert done["state_type"] == waited["state_type"] == "COMPLETED", waited["state"]
        assert waited["start_time"] >= done["end_time"]
        # the library's lines are in the run's logs in Prefect, not only in the worker's output
        body = {"logs": {"flow_run_id": {"any_": [done["id"]]}}}
        names = [lg["name"] for lg in _api(api, "POST", "/logs/filter", body)]
        assert names.count("vitalgru.io.physionet") == 1, names
        manifest = json.loads((out_dir / "manifest.json").read_text())
        assert sorted(manifest["records"]) == ["100", "101"]
        assert manifest["n_beats"] == 2273 + 1865


def test_the_fetch_is_retried_only_when_another_try_can_mend_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.states import Failed

    def retried(exc: BaseException) -> bool:
        # the state the task engine builds from the exception it caught
        return _worth_retrying(None, None, Failed(data=exc))

    assert retried(DownloadError("https://physionet.org/files/mitdb/1.0.0/100.dat: timed out"))
    assert retried(ConnectionResetError("reset by peer"))
    assert not retried(FileNotFoundError("PhysioNet mirror /x is not a folder"))
    assert not retried(ChecksumError("100.dat", "ab" * 32, "cd" * 32))
    assert not retried(UnknownDatabaseError("no database 'mitbd'"))
    assert not retried(PermissionError("mirror not readable"))
    # and in a flow: a mirror that is not there is tried once, not again after 2 and 10 s
    monkeypatch.setenv("VITALGRU_PHYSIONET_MIRROR", str(tmp_path / "gone"))
    tries: list[str] = []
    real = ingest_module.open_database

    def counted(*args: Any, **kwargs: Any) -> Any:
        tries.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "open_database", counted)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ingest_flow(overrides={"arrhythmia.records": ["100"]}, out_dir=str(tmp_path / "ds"))
    assert tries == ["mitdb"]


def test_a_part_is_keyed_on_its_records_files_in_a_sub_folder_too() -> None:
    # the files were matched by their stem ("p000020"), never the record ("p00/p000020"):
    # a changed source file kept the old part
    for record, prefix in (("100", ""), ("p00/p000020", "p00/")):
        a = {
            f"{prefix}{record.split('/')[-1]}.{x}": c * 64 for x, c in (("hea", "a"), ("dat", "b"))
        }
        b = {**a, f"{prefix}{record.split('/')[-1]}.dat": "f" * 64}
        assert _record_key(record, a, "cfg", "code") != _record_key(record, b, "cfg", "code")
        assert "/" not in _record_key(record, a, "cfg", "code")  # one file in the parts folder


def test_unverified_files_are_keyed_on_their_own_bytes(
    tmp_path: Path, physionet_mirror: Path
) -> None:
    from pipelines.ingest import fetch_database

    mirror = tmp_path / "mirror"
    (mirror / "mitdb").mkdir(parents=True)
    for f in (physionet_mirror / "mitdb").iterdir():
        if f.name.startswith("100.") or not f.name[0].isdigit():
            shutil.copy(f, mirror / "mitdb" / f.name)
    (mirror / "mitdb" / "RECORDS").write_text("100\n")
    atr = mirror / "mitdb" / "100.atr"
    data = bytearray(atr.read_bytes())
    data[100] ^= 0x01  # corrected in place, say
    atr.write_bytes(bytes(data))
    settings = {"mirror": str(mirror), "verify_checksums": False}
    got = fetch_database.fn("mitdb", settings, ["100"])
    # the published checksum stood for the file before, though nobody checked it
    assert got["checksums"]["100.atr"] == hashlib.sha256(atr.read_bytes()).hexdigest()


def test_unverified_downloads_are_keyed_on_their_own_bytes(
    tmp_path: Path, mitdb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as for a mirror: a cached download that is never checked against the published
    # digest is not keyed on it either (a copy changed since kept the published file's part)
    from pipelines.ingest import fetch_database

    monkeypatch.delenv("VITALGRU_PHYSIONET_MIRROR", raising=False)
    build_physionet_tree(mitdb_dir, tmp_path / "served", "mitdb", "1.0.0", ["100"], copy=True)
    with PhysioNetHTTPServer(tmp_path / "served") as server:
        settings = {"base_url": server.base_url, "cache_dir": str(tmp_path / "cache"),
                    "verify_checksums": False, "retries": 0}  # fmt: skip
        got = fetch_database.fn("mitdb", settings, ["100"])
        atr = Path(got["root"]) / "100.atr"
        data = bytearray(atr.read_bytes())
        data[100] ^= 0x01
        atr.write_bytes(bytes(data))
        got = fetch_database.fn("mitdb", settings, ["100"])
    assert got["checksums"]["100.atr"] == hashlib.sha256(atr.read_bytes()).hexdigest()
