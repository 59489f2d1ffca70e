"""What the HL7 v2 inbox (:class:`~pipelines.hl7_inbox.Hl7Inbox`) says back about a message,
and how it tells one message from another.

:class:`Hl7Reply` is the outcome of one message: its acknowledgement for the sender, the same
outcome as an HTTP status, and what was done. :func:`answered` turns it into the
acknowledgement the message asks for: the original-mode ``AA``/``AE``/``AR``, or in enhanced
mode (``MSH-15`` given) the commit acknowledgement ``CA``/``CE``/``CR``, or none (HL7 v2.5
chapter 2, tables 0155 and 0008). :func:`sender_key` names a message for the remembered
control ids that keep a resent one from being taken twice, and :func:`type_label` names its
type for the ``/metrics`` page and the access log.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vitalgru.io.hl7v2 import Hl7Message, read_message
from vitalgru.io.hl7v2 import ack as hl7_ack

__all__ = ["KNOWN_TYPES", "Hl7Reply", "answered", "sender_key", "type_label", "unread_header"]


@dataclass
class Hl7Reply:
    """What :meth:`~pipelines.hl7_inbox.Hl7Inbox.handle` made of a message."""

    ack: str  # the acknowledgement (ER7) for the sender (CA, CE or CR in enhanced mode)
    code: str  # AA, AE or AR (the outcome, whichever mode acknowledges it)
    status: int  # the HTTP status of the same outcome (200 for AA)
    text: str  # what was done, or why not
    message_type: str = ""
    result: dict[str, Any] = field(default_factory=dict)  # the ward's answer, for AA
    duplicate: bool = False
    send: bool = True  # False: MSH-15 asks for no acknowledgement of this outcome (MLLP)
    error: int = 207  # why it was not taken, as HL7 table 0357 (ERR-3) says it


#: Enhanced mode's commit acknowledgement of each outcome: taken, refused for what it says
#: or not processed, rejected as a message not read here.
_COMMIT = {"AA": "CA", "AE": "CE", "AR": "CR"}
#: The commit acknowledgements ``MSH-15`` asks for (HL7 table 0155: always, never, on an
#: error, on success); a value not in the table is taken as always.
_ACCEPT = {"AL": ("CA", "CE", "CR"), "NE": (), "ER": ("CE", "CR"), "SU": ("CA",)}


def answered(msg: Hl7Message, reply: Hl7Reply) -> Hl7Reply:
    """``reply`` as the message asks to be acknowledged: as it is in original mode (no
    ``MSH-15``); in enhanced mode a commit acknowledgement (``CA``/``CE``/``CR`` for
    ``AA``/``AE``/``AR``), sent when ``MSH-15`` asks for one of that outcome, else the
    original-mode one when ``MSH-16`` asks for an application acknowledgement of it (a sender
    asking ``NE``/``AL`` waits for one), else none. The reply kept for a resend is the
    original-mode one: a resend is answered as it asks."""
    accept = msg.field("MSH", 15).upper()
    if not accept:
        return reply
    commit = _COMMIT.get(reply.code, "CE")
    if commit in _ACCEPT.get(accept, _ACCEPT["AL"]):
        return replace(reply, ack=hl7_ack(msg, commit, reply.text, error=reply.error),
                       send=True)  # fmt: skip
    application = msg.field("MSH", 16).upper()
    wanted = _ACCEPT.get(application, ()) if application else ()  # none said: none sent
    return replace(reply, send=commit in wanted)


def unread_header(raw: str | bytes) -> Hl7Message:
    """What a message that cannot be read gives to name it in its ``AR`` (its header, when
    its bytes are of a character set not said or not read, byte for byte, or its separators
    are not allowed ones, in the standard ones); else nothing."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    try:
        return read_message(text)
    except ValueError:
        pass
    # separators HL7 does not allow (letters in MSH-2): its header split at a field
    # separator that is one, to name its control id, and answered in the standard ones
    head = text.lstrip("\x0b\r\n\t ").replace("\n", "\r").split("\r", 1)[0]
    if head.startswith("MSH") and len(head) > 3 and not (head[3].isalnum() or head[3].isspace()):
        return Hl7Message([head.split(head[3])[:1] + ["^~\\&"] + head.split(head[3])[2:]],
                          head[3])  # fmt: skip
    return Hl7Message([["MSH"]])


def sender_key(msg: Hl7Message) -> str:
    """What makes a message unique: its control id (``MSH-10``) within its sending
    application and facility (``MSH-3``, ``MSH-4``); "" without a control id."""
    if not msg.control_id:
        return ""
    return "|".join((msg.field("MSH", 3), msg.field("MSH", 4), msg.control_id))


#: The message types the inbox takes, each a label of its own on /metrics; any other is
#: "other" (MSH-9 is the sender's text: one series each, and any text, on an open page).
KNOWN_TYPES = frozenset({"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A08", "ADT^A11", "ADT^A40",
                         "ORU^R01"})  # fmt: skip


def type_label(msg: Hl7Message, bounded: bool = True) -> str:
    """The message's type as a label (one of :data:`KNOWN_TYPES` or ``other``), or as
    MSH-9 says it (``bounded=False``: the access log's action, which is not open)."""
    code, trigger = msg.kind
    name = f"{code}^{trigger}" if trigger else code or "none"
    return name if not bounded or name in KNOWN_TYPES else "other"
