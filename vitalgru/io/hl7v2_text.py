"""The text of HL7 v2 messages (ER7) below their segments and fields: the character set
``MSH-18`` names (:func:`message_bytes`, and bytes read strictly in it), the escape
sequences (:func:`escape`; separators, line breaks, hex bytes, highlighting read back) and
time stamps (:func:`hl7_time`). :mod:`vitalgru.io.hl7v2` reads messages with them."""

from __future__ import annotations

import codecs
import re
from collections import Counter
from datetime import datetime, timedelta, timezone, tzinfo

from vitalgru.errors import Hl7ReadError

__all__ = ["CHARSETS", "CLOCK_SKEW", "escape", "hl7_time", "message_bytes"]

#: Character sets ``MSH-18`` may name (HL7 table 0211) that are read, as Python's
#: codecs; a message naming none is read as UTF-8 (ASCII is a part of it), strictly. Other
#: names a sender writes for these (``UTF-8``, ``ISO-8859-1``, ``latin1``) are read as
#: Python's codecs read them.
CHARSETS = {
    "ASCII": "ascii", "8859/1": "latin-1", "8859/2": "iso8859-2", "8859/3": "iso8859-3",
    "8859/4": "iso8859-4", "8859/5": "iso8859-5", "8859/6": "iso8859-6", "8859/7": "iso8859-7",
    "8859/8": "iso8859-8", "8859/9": "iso8859-9", "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8", "UNICODE": "utf-8",
}  # fmt: skip


def _codec(charset: str) -> str | None:
    """The Python codec of an ``MSH-18`` character set ("": UTF-8): table 0211's names, or
    a name Python's codecs know (``UTF-8``, ``ISO-8859-1``); None for a set neither knows
    (``ISO IR87``), whose message is read only when all its bytes are ASCII."""
    name = charset.strip().upper()
    if not name:
        return "utf-8"
    if name in CHARSETS:
        return CHARSETS[name]
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _msh18(head: str) -> str:
    """``MSH-18`` (its first repetition) of a message's first segment, as sent."""
    if len(head) < 8 or not head.startswith("MSH"):
        return ""
    msh = head.split(head[3])
    rep = msh[1][1] if len(msh) > 1 and len(msh[1]) > 1 else "~"
    return msh[17].split(rep)[0].strip() if len(msh) > 17 else ""


def check_separators(field_sep: str, encoding: str) -> None:
    """:class:`~vitalgru.errors.Hl7ReadError` (102, a ValueError) unless ``MSH-1`` and
    ``MSH-2`` are separators HL7 v2 allows (2.5.4): each a different character, none a
    letter, a digit or white space, at most five in ``MSH-2`` (the truncation character of
    v2.7 the fifth). Letters as separators split the message's own text: ``MSH|ABCD|``
    read ``ORU^R01`` as one component (an unsupported type) and its acknowledgement,
    echoing them, spelt ``ACK^R01`` as ``ACKAR01AACK``."""
    seps = field_sep + encoding
    faults = [f"{len(encoding)} characters in MSH-2"] if len(encoding) > 5 else []
    faults += [f"{_spelt(ch)} {'twice' if n == 2 else f'{n} times'}"
               for ch, n in Counter(seps).items() if n > 1]  # fmt: skip
    odd = [_spelt(ch) for ch in dict.fromkeys(seps) if ch.isalnum() or ch.isspace()]
    faults += [f"{', '.join(odd)} not allowed"] if odd else []
    if faults:
        # the characters named in words: quoted as they are, the acknowledgement sent them
        # escaped in its own separators ('|^^^^' read '\F\\S\\S\\S\\S\' in its MSA-3)
        raise Hl7ReadError(
            f"not an HL7 v2 message: its separators (MSH-1, MSH-2) are "
            f"{', '.join(_spelt(ch) for ch in seps)} ({'; '.join(faults)}); they must be "
            "different characters, none a letter, digit or space, at most five in MSH-2",
            102,
        )


#: Names of the characters HL7 v2 uses as separators, and of white space: what a refusal
#: calls them, since in an HL7 text the characters themselves are escaped.
_NAMES = {"|": "vertical bar", "^": "caret", "~": "tilde", "\\": "backslash",
          "&": "ampersand", "#": "number sign", "'": "apostrophe", " ": "space",
          "\t": "tab"}  # fmt: skip


def _spelt(ch: str) -> str:
    """A separator as a refusal names it: in words (:data:`_NAMES`), quoted when it is any
    other printable ASCII character, else by its code point (``U+00A7``)."""
    if ch in _NAMES:
        return _NAMES[ch]
    return f"'{ch}'" if ch.isascii() and ch.isprintable() else f"U+{ord(ch):04X}"


def _decode(raw: bytes) -> str:
    """A message's bytes as text, in the character set its ``MSH-18`` names (UTF-8 when it
    names none). :class:`~vitalgru.errors.Hl7ReadError` (102, a ValueError), naming the
    byte, for bytes that are not of that set: replaced by U+FFFD, two identifiers that
    differ in one letter became one patient."""
    # the MSH segment's separators and MSH-18 are ASCII: read them byte for byte
    head = raw.lstrip(b"\x0b\r\n\t ").split(b"\r", 1)[0].split(b"\n", 1)[0]
    charset = _msh18(head.decode("latin-1"))
    codec = _codec(charset)
    try:
        return raw.decode(codec or "ascii")
    except UnicodeDecodeError as e:
        if codec is None:
            raise Hl7ReadError(
                f"MSH-18 {charset!r} is not a character set this gateway reads "
                f"({', '.join(CHARSETS)}, or a name of one of them such as UTF-8 or "
                f"ISO-8859-1), and byte 0x{raw[e.start]:02X} at {e.start} is not ASCII: "
                "nothing was taken",
                102,
            ) from None
        named = f"MSH-18 {charset!r}" if charset else "UTF-8 (MSH-18 names no character set)"
        raise Hl7ReadError(
            f"byte 0x{raw[e.start]:02X} at {e.start} is not {named}: nothing was taken; name "
            "the message's character set in MSH-18 (8859/1 for Latin-1)",
            102,
        ) from None


def message_bytes(text: str) -> bytes:
    """A message (an acknowledgement) as the bytes of the character set its ``MSH-18``
    names (UTF-8 when none); a character that set lacks is sent as ``?``."""
    head = text.lstrip("\x0b\r\n\t ").split("\r", 1)[0]
    return text.encode(_codec(_msh18(head)) or "ascii", errors="replace")


def _unescape(text: str, field_sep: str, enc: str, codec: str = "utf-8") -> str:
    """``text`` with HL7 v2's escape sequences read (HL7 v2.5 2.7): the separators
    (``\\F\\`` ...), ``\\.br\\`` as a line break, ``\\Xhh...\\`` as those bytes in the
    message's character set (``codec``), the highlighting ``\\H\\``/``\\N\\`` left out; any
    other sequence is kept as sent."""
    comp, rep, esc, sub = enc[0], enc[1], enc[2], enc[3] if len(enc) > 3 else "&"
    if esc not in text:
        return text
    chars = {"F": field_sep, "S": comp, "T": sub, "R": rep, "E": esc, ".br": "\n", "H": "", "N": ""}

    def read(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in chars:
            return chars[code]
        try:  # \Xhh..\: bytes in the message's character set
            return bytes.fromhex(code[1:]).decode(codec) if len(code) > 1 else m.group(0)
        except ValueError:  # not hex, or not of the set: kept as sent
            return m.group(0)

    # one pass, left to right (HL7 v2.5 2.7.4): an escaped escape character is a character,
    # and what follows it is not read as another sequence (replaced code by code, "\E\F\"
    # gave "\|" instead of "\F\")
    e = re.escape(esc)
    return re.sub(f"{e}([FSTREHN]|\\.br|X[0-9A-Fa-f]*){e}", read, text)


def escape(text: str, field_sep: str = "|", encoding: str = "^~\\&") -> str:
    """``text`` with HL7 v2's escape sequences for the separators it holds, and line breaks
    as spaces: safe inside a field."""
    comp, rep, esc, sub = encoding[0], encoding[1], encoding[2], encoding[3]
    out = text.replace(esc, f"{esc}E{esc}")
    for ch, code in ((field_sep, "F"), (comp, "S"), (sub, "T"), (rep, "R")):
        out = out.replace(ch, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


#: The precisions of an HL7 v2 time stamp with a time of day, by length: to the hour (the
#: start of it), the minute, the second.
_TS_FORMATS = {10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


#: How far a local time may be ahead of when its message was received (or sent) and still
#: be read as the later of the two times it can name in the night a clock goes back: the
#: sender's clock and the gateway's are that far apart at most. Under an hour, so a time of
#: the first occurrence sent at once is never read as the second.
CLOCK_SKEW = timedelta(minutes=5)


def hl7_time(
    ts: str, tz: tzinfo | None = None, received: datetime | None = None
) -> datetime | None:
    """An HL7 v2 time stamp (``YYYYMMDDHH[MM[SS[.S]]][+/-ZZZZ]``; one to the hour or the
    minute is the start of it) as a datetime with its UTC offset; one without an offset in
    ``tz`` (the site's zone) when given. None for one without a time of day (a date
    alone), or without an offset and no ``tz`` (it cannot be placed).

    A local time the clock shows twice (the hour it goes back) is the later of the two
    that is not after ``received`` (when its message arrived, with its UTC offset; give
    :data:`CLOCK_SKEW` of leeway): a monitor sending as it measures sends the second
    occurrence's readings during the second occurrence. Without ``received``, or when
    both are after it, the first. A local time the clock skips (the hour it goes forward)
    is read with the offset before the change, as a clock not yet moved forward shows it
    (02:30 is 03:30 summer time), unless that is after ``received`` and the other reading
    (with the offset after the change, an hour earlier) is not."""
    ts = ts.split("^")[0].strip()
    if len(ts) < 10:
        return None
    sign = next((i for i, ch in enumerate(ts) if ch in "+-" and i >= 10), None)
    body, zone = (ts, "") if sign is None else (ts[:sign], ts[sign:])
    body = body.split(".")[0]
    if len(body) not in _TS_FORMATS or not body.isdigit():
        return None
    try:
        t = datetime.strptime(body, _TS_FORMATS[len(body)])
        z = datetime.strptime(zone[1:5], "%H%M") if zone else None
    except ValueError:
        return None
    if z is None:
        return None if tz is None else _local_time(t, tz, received)
    offset = timedelta(hours=z.hour, minutes=z.minute) * (1 if zone[0] == "+" else -1)
    return t.replace(tzinfo=timezone(offset))


def _local_time(t: datetime, tz: tzinfo, received: datetime | None) -> datetime | None:
    """A naive local time ``t`` placed in ``tz`` (see :func:`hl7_time`), with its UTC
    offset; None when ``tz`` gives it none."""
    placed = []
    for fold in (0, 1):  # fold 0: the first of a repeated time, the offset before a gap
        local = t.replace(tzinfo=tz, fold=fold)
        offset = local.utcoffset()
        if offset is None:
            return None
        placed.append(t.replace(tzinfo=timezone(offset)))
    if received is None or placed[0] == placed[1]:  # no choice to make
        return placed[0]
    if received.tzinfo is None:
        raise ValueError(f"the time received {received.isoformat()} has no UTC offset")
    past = [p for p in placed if p <= received + CLOCK_SKEW]
    return max(past) if past else placed[0]
