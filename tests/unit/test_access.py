"""Named gateway tokens: made once and kept only as hashes, read back with their roles,
and a token file that is not right stops the gateway with the reason."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipelines.access import ROLES, TokenTable, new_token


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
        "admin": ["ack", "feed", "read"]}  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a token file"),
        ('{"tokens": []}', "expected"),
        ('{"tokens": [{"name": "a", "role": "feed"}]}', "exactly name, role and sha256"),
        ('{"tokens": [{"name": "a", "role": "boss", "sha256": "' + "a" * 64 + '"}]}',
         "role 'boss' is not one of"),
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
