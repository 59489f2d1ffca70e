"""HL7 v2 acknowledgements (``ACK``) of the messages :mod:`vitalgru.io.hl7v2` reads: the
outcome (``MSA-1``), the message acknowledged (``MSA-2``) and, for one not taken, why: in
an ``ERR`` segment from v2.5 on (``ERR-3`` a code of HL7 table 0357, ``ERR-4`` severity
``E``, ``ERR-8`` the text), in ``MSA-3`` before v2.7 (withdrawn there: a v2.7 or v2.8
acknowledgement carrying it is not valid), and in ``MSA-3`` alone for v2.4 and earlier,
whose ``ERR`` is of another shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vitalgru.io.hl7v2_text import escape

if TYPE_CHECKING:
    from vitalgru.io.hl7v2 import Hl7Message, OruMessage

__all__ = ["ERROR_CODES", "ack", "control_id"]

#: HL7 table 0357 (message error condition codes) as ``ERR-3`` sends them: why a message
#: was not taken.
ERROR_CODES = {
    100: "Segment sequence error", 101: "Required field missing", 102: "Data type error",
    103: "Table value not found", 200: "Unsupported message type",
    203: "Unsupported version id", 204: "Unknown key identifier", 205: "Duplicate key",
    206: "Application record locked", 207: "Application internal error",
}  # fmt: skip
#: Outcomes that say the message was not taken (original and enhanced mode).
_ERRORS = {"AE", "AR", "CE", "CR"}


def _version(text: str) -> tuple[int, ...]:
    """``MSH-12`` as numbers (``2.5.1``: (2, 5, 1)); () when it is not a version."""
    try:
        return tuple(int(x) for x in text.strip().split("."))
    except ValueError:
        return ()


def control_id() -> str:
    """A control id of its own for an acknowledgement (``MSH-10``): 20 hex digits of a
    random UUID, within the 20 characters of versions before 2.6 and unique (80 bits).
    "ACK" before the acknowledged message's id, as it was, gave 23 characters for a
    message whose id used all 20."""
    return uuid.uuid4().hex[:20].upper()


def ack(
    message: OruMessage | Hl7Message,
    code: str = "AA",
    text: str = "",
    app: str = "vitalgru",
    error: int = 207,
) -> str:
    """An HL7 v2 acknowledgement (``ACK``, of the message's trigger event) of ``message``:
    ``AA`` accepted, ``AE`` error, ``AR`` rejected (``CA``/``CE``/``CR`` in enhanced mode),
    with ``text`` for the sender's log. Addressed back to the sender (``MSH-5``/``MSH-6``
    its ``MSH-3``/``MSH-4``), with the message's processing id and version (``MSH-11``,
    ``MSH-12``; ``P`` and 2.5 when it has none), ``MSH-9`` ``ACK^<trigger>^ACK`` (two
    components for v2.3 and before), a control id of its own (:func:`control_id`), sent at
    ``MSH-7`` in UTC with its offset
    (``+0000``), in the message's separators (``MSH-1``,
    ``MSH-2``) and character set (``MSH-18``: send it as
    :func:`~vitalgru.io.hl7v2_text.message_bytes`), its control id escaped as it was sent
    (``MSA-2``). An error or a rejection says why (see the module's description), ``error``
    its code in HL7 table 0357 (:data:`ERROR_CODES`; 207, application internal error, when
    the caller names none)."""
    f, c = message.field_sep, message.components
    enc = getattr(message, "encoding", "") or c + "~\\&"  # the message's own, in MSH-2
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")  # without it: local time unknown
    full = enc if len(enc) > 3 else enc + "&"
    # the reason escaped in the message's separators (they were replaced by spaces: a
    # refusal naming "ADT^A03" or "HR|BP" read "ADT A03", "HR BP")
    safe = escape(text, f, full)
    # the control id as the message sent it (escaped): unescaped, "R\\F\\1" came back as
    # "R|1", a field of its own in the ACK
    cid = escape(message.control_id, f, full)
    trigger = (message.message_type.split(c) + [""])[1].strip() or "R01"
    msh = next((s for s in getattr(message, "segments", []) if s[0] == "MSH"), ["MSH"])

    def sent(n: int, default: str = "") -> str:  # MSH-n as sent (first repetition)
        got = msh[n - 1].split(getattr(message, "encoding", "^~")[1])[0] if n - 1 < len(msh) else ""
        return "".join(ch for ch in got if ch not in "\r\n") or default

    processing = sent(11, "P").split(c)[0] or "P"
    version = sent(12, "2.5").split(c)[0] or "2.5"
    charset = "".join(ch for ch in getattr(message, "charset", "") if ch not in f + enc)
    v = _version(version) or (2, 5)
    # MSH-9: the message structure (third component) came in v2.3.1; a v2.3 receiver
    # takes two components only
    kind = f"ACK{c}{trigger}" + (f"{c}ACK" if v >= (2, 3, 1) else "")
    failed = code.upper() in _ERRORS
    msa = f"MSA{f}{code}{f}{cid}" + (f"{f}{safe}" if safe and v < (2, 7) else "")
    segments = [
        f"MSH{f}{enc}{f}{app}{f}{f}{sent(3)}{f}{sent(4)}{f}{now}{f}{f}{kind}"
        f"{f}{control_id()}{f}{processing}{f}{version}" + (f"{f * 6}{charset}" if charset else ""),
        msa,
    ]  # fmt: skip
    if failed and v >= (2, 5):
        name = ERROR_CODES.get(error, "")
        segments.append(f"ERR{f * 3}{error}{c}{name}{c}HL70357{f}E{f * 4}{safe}")
    return "\r".join(segments) + "\r"
