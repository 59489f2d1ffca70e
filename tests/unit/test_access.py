"""Named gateway tokens: made once and kept only as hashes, read back with their roles,
and a token file that is not right stops the gateway with the reason."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines import access
from pipelines.access import (
    ROLES,
    Credential,
    RateLimit,
    StreamTickets,
    TokenFile,
    TokenTable,
    new_token,
    revoke_token,
)


def test_a_new_token_is_shown_once_and_kept_as_its_hash(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    feed = new_token(f, "ward-4 feeds", "feed")
    nurse = new_token(f, "RN Diaz", "clinician")
    assert len(feed) >= 40 and feed != nurse
    text = f.read_text()
    assert feed not in text and nurse not in text  # only the hashes
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    table = TokenTable.from_file(f)
    assert table.who(feed).name == "ward-4 feeds" and table.who(feed).role == "feed"
    assert table.who(nurse).may("ack") and not table.who(nurse).may("feed")
    assert table.who(feed + "x") is None and table.who("") is None
    with pytest.raises(ValueError, match="already a token named 'RN Diaz'"):
        new_token(f, "RN Diaz", "reader")
    with pytest.raises(ValueError, match="role 'nurse' is not one of"):
        new_token(f, "RN Okafor", "nurse")
    with pytest.raises(ValueError, match="not a plain name"):
        new_token(f, "../x\n", "reader")
    assert [c.name for c in TokenTable.from_file(f).credentials] == ["ward-4 feeds", "RN Diaz"]


def test_roles_grant_only_their_kinds() -> None:
    assert {r: sorted(k) for r, k in ROLES.items()} == {
        "feed": ["feed"], "reader": ["read"], "clinician": ["ack", "read"],
        "admin": ["ack", "audit", "feed", "read"]}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a token file"),
        ('{"tokens": {}}', "expected"),
        ('{"tokens": [{"name": "a", "role": "feed"}]}', "must have name, role and sha256"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '", "x": 1}]}',
         "may have expires, patients"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '", '
         '"expires": "2027-01-01"}]}', "not an ISO 8601 time with its offset"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '", '
         '"expires": "soon"}]}', "not an ISO 8601 time"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '", '
         '"patients": []}]}', "non-empty list of patient ids"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '", '
         '"patients": ["bed 4"]}]}', "non-empty list of patient ids"),
        ('{"tokens": [{"name": "a", "role": "boss", "sha256": "' + "a" * 64 + '"}]}',
         "role 'boss' is not one of"),
        # a role in a list raised a TypeError, which a running gateway did not take for a
        # bad edit (a 500, not the tokens read before)
        ('{"tokens": [{"name": "a", "role": ["feed"], "sha256": "' + "a" * 64 + '"}]}',
         "role \\['feed'\\] is not one of"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "A" * 64 + '"}]}',
         "64 lowercase hex digits"),
        ('{"tokens": [{"name": "a", "role": "feed", "sha256": "' + "a" * 64 + '"}, '
         '{"name": "a", "role": "reader", "sha256": "' + "b" * 64 + '"}]}',
         "names must be unique"),
    ],
)  # fmt: skip
def test_a_token_file_that_is_not_right_is_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "tokens.json"
    f.write_text(content)
    with pytest.raises(ValueError, match=message):
        TokenTable.from_file(f)
    with pytest.raises(ValueError, match="no such token file"):
        TokenTable.from_file(tmp_path / "absent.json")


def test_a_token_may_expire_and_be_limited_to_some_patients(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    feed = new_token(f, "bed-4 monitor", "feed", expires_days=30, patients=["bed-4", "icu-2-*"])
    cred = TokenTable.from_file(f).who(feed)
    when = datetime.fromisoformat(cred.expires)
    assert abs(when - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert not cred.expired() and cred.expired(when) and cred.expired(when + timedelta(days=1))
    assert cred.covers("bed-4") and cred.covers("icu-2-17")
    assert not cred.covers("bed-40") and not cred.covers("icu-3-1")
    plain = Credential("x", "reader", "a" * 64)
    assert plain.covers("anyone") and not plain.expired()
    for bad in ([], ["bed 4"], ["../x"]):
        with pytest.raises(ValueError, match="non-empty list of patient ids"):
            new_token(f, "y", "feed", patients=bad)
    with pytest.raises(ValueError, match="more than 0 days"):
        new_token(f, "y", "feed", expires_days=0)
    assert [c.name for c in TokenTable.from_file(f).credentials] == ["bed-4 monitor"]


def test_a_revoked_token_leaves_the_others(tmp_path: Path) -> None:
    f = tmp_path / "tokens.json"
    a, b = new_token(f, "a", "feed"), new_token(f, "b", "reader", patients=["bed-1"])
    assert revoke_token(f, "a").role == "feed"
    table = TokenTable.from_file(f)
    assert table.who(a) is None and table.who(b).patients == ("bed-1",)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="no token named 'a'"):
        revoke_token(f, "a")
    revoke_token(f, "b")
    assert TokenTable.from_file(f).credentials == []  # every token revoked: no one gets in


def test_a_shared_token_from_a_secret_file_is_taken_without_its_newline() -> None:
    token = "s3cret-" * 6
    table = TokenTable.single(token + "\n")
    assert table.who(token) is not None  # every client was refused 401
    with pytest.raises(ValueError, match="at least"):
        TokenTable.single(" " * 40)  # blank is not a token (and not an open gateway)


def test_edits_made_at_once_are_all_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # each serve-token read the file, changed it and wrote it back: one made at the same
    # time lost the other's change (a revoked token back in force, a handed-out one gone)
    from concurrent.futures import ThreadPoolExecutor

    f = tmp_path / "tokens.json"
    new_token(f, "old", "reader")
    real = TokenTable.from_file

    def slow_read(path: str | os.PathLike) -> TokenTable:
        table = real(path)
        time.sleep(0.2)  # another edit reads the same file meanwhile
        return table

    monkeypatch.setattr(TokenTable, "from_file", staticmethod(slow_read))
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(revoke_token, f, "old"),
                pool.submit(new_token, f, "n1", "feed"),
                pool.submit(new_token, f, "n2", "feed")]  # fmt: skip
        [j.result(30) for j in jobs]
    assert sorted(c.name for c in real(f).credentials) == ["n1", "n2"]


def test_a_token_file_whose_folder_is_read_only_is_edited_through_its_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a link into a read-only folder (a mounted secret): the lock beside the file itself
    # cannot be made; it was an OSError traceback, and before the lock the edit worked
    import pipelines.access as access

    real_dir, mine = tmp_path / "secret", tmp_path / "mine"
    real_dir.mkdir()
    mine.mkdir()
    new_token(real_dir / "t.json", "first", "admin")
    (mine / "t.json").symlink_to(real_dir / "t.json")
    real_hold = access.hold

    def read_only_there(lock: str, *args: object, **kw: object) -> object:
        if lock.startswith(str(real_dir)):
            raise OSError(f"the token file cannot be held: Read-only file system ({lock})")
        return real_hold(lock, *args, **kw)

    monkeypatch.setattr(access, "hold", read_only_there)
    new_token(mine / "t.json", "second", "reader")
    assert [c.name for c in TokenTable.from_file(mine / "t.json").credentials] == [
        "first", "second"]  # fmt: skip


def test_a_running_gateway_reads_the_file_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "tokens.json"
    a = new_token(f, "a", "feed")
    live = TokenFile(f, check_s=0)
    assert live.current().who(a).name == "a"
    b = new_token(f, "b", "reader")
    assert live.current().who(b).name == "b" and live.reloads == 1
    revoke_token(f, "a")
    assert live.current().who(a) is None
    # a file broken by hand keeps the tokens in force, and says why
    good = live.current()
    f.write_text('{"tokens": [{"name": "c"}]}')
    with caplog.at_level(logging.ERROR, logger="pipelines.access"):
        assert live.current() is good and live.current().who(b).name == "b"
    assert live.errors == 1 and "must have name, role and sha256" in caplog.text
    assert caplog.text.count("stay in force") == 1  # once per change, not per request
    f.unlink()  # gone: the same
    assert live.current() is good and live.errors == 2
    f.write_text(json.dumps({"tokens": [Credential("d", "admin", "d" * 64).entry()]}))
    os.utime(f, ns=(1, 1))
    assert [c.name for c in live.current().credentials] == ["d"]
    # looked at no more often than check_s
    slow = TokenFile(f, check_s=3600)
    revoke_token(f, "d")
    assert [c.name for c in slow.current().credentials] == ["d"]
    with pytest.raises(ValueError, match="no such token file"):
        TokenFile(tmp_path / "absent.json")


def test_stream_tickets_are_good_once_and_for_a_while() -> None:
    cred = TokenTable.single("a-shared-token-for-everything").credentials[0]
    tickets = StreamTickets(ttl_s=0.05)
    t = tickets.issue(cred)
    assert len(t) >= 40 and tickets.issue(cred) != t
    assert tickets.redeem(t) == cred and tickets.redeem(t) is None  # once
    late = tickets.issue(cred)
    time.sleep(0.06)
    assert tickets.redeem(late) is None and tickets.redeem("made-up") is None


def test_a_rate_limit_lets_bursts_through_and_refills() -> None:
    limit = RateLimit(20.0, burst=3)
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limit.take("a")
    assert 0 < wait <= 0.05 and limit.refused == 1
    assert limit.take("b") == 0.0  # each caller its own bucket
    time.sleep(0.06)
    assert limit.take("a") == 0.0  # refilled at 20 a second
    assert RateLimit(1.0).burst == 10.0 and RateLimit(50.0).burst == 100.0
    with pytest.raises(ValueError, match="must be > 0"):
        RateLimit(0)


def test_a_rate_limit_forgets_callers_that_stay_under_their_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(access, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    limit = RateLimit(20.0)  # a caller's bucket is full again 2 s after its last request
    for i in range(25_000):  # a client address each, one request a millisecond
        assert limit.take(f"10.0.{i >> 8}.{i & 255}") == 0.0
        clock[0] += 0.001
    # only a refusal forgot callers: all 25,000 were kept
    assert len(limit._buckets) <= 10_000 + 1 and limit.refused == 0
    # callers whose buckets are not full are kept, however many: still limited
    busy = RateLimit(20.0, burst=1)
    for i in range(3 * 10_000):
        assert busy.take(f"c{i}") == 0.0
    assert len(busy._buckets) == 3 * 10_000 and busy.take("c0") > 0
    assert busy._prune_at > len(busy._buckets)  # not a pass over them all each request
