"""The answers every handler gives a command it cannot run: `command.rejected`, naming
only an authenticated identity, and an audit line for a denial. One module, so that the
order worker and the matcher answer alike and neither borrows from the other."""

from __future__ import annotations

from order_processor.domain.commands import peek_identity
from order_processor.domain.events import Event, rejection_event
from order_processor.domain.ports import EventSink
from order_processor.exceptions import CommandRejected, Identity, Reason
from order_processor.messaging.consumer import Message
from order_processor.security.audit import AuditLogger
from order_processor.security.redaction import Redactor

AUTH_REASONS = frozenset({Reason.UNAUTHORIZED, Reason.TOKEN_EXPIRED, Reason.FORBIDDEN})
MAX_REASON_TEXT = 300
_REDACTOR = Redactor()


def printable(text: str) -> str:
    """A rejection's text may quote what the sender wrote: printable ASCII only, bounded,
    and anything shaped like a token or a secret redacted."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[: 4 * MAX_REASON_TEXT])
    cleaned = _REDACTOR.scrub(cleaned)
    return cleaned if len(cleaned) <= MAX_REASON_TEXT else cleaned[: MAX_REASON_TEXT - 3] + "..."


def from_sender(rejection: CommandRejected, sender: Identity) -> CommandRejected:
    """The rejection of an admitted command names its sender, unless it names one already."""
    rejection.identity = rejection.identity or sender
    return rejection


async def reject(
    message: Message, rejection: CommandRejected, events: EventSink, audit: AuditLogger
) -> None:
    """Answer with `command.rejected` (and audit a denial); the caller deletes the message."""
    await events.publish([rejection_answer(message, rejection, audit)])


def rejection_answer(message: Message, rejection: CommandRejected, audit: AuditLogger) -> Event:
    """The `command.rejected` event of a message, a denial audited once as it is decided
    (a publish tried again does not audit again). The event names only an authenticated
    identity (see `rejection_event`)."""
    identity = rejection.identity or Identity()
    claimed_username, claimed_command_id = peek_identity(message.body)
    if rejection.reason in AUTH_REASONS:
        audit.log_access_denied(
            identity.username,
            action="command",
            reason=rejection.message,
            claimed_username=None if identity.username else claimed_username,
        )
    return rejection_event(
        reason=rejection.reason,
        message=printable(rejection.message),
        message_id=message.message_id,
        username=identity.username,
        command_id=identity.command_id,
        order_id=rejection.details.get("order_id") if identity.username else None,
        claimed_username=claimed_username,
        claimed_command_id=claimed_command_id,
        occurred_at=identity.issued_at or message.sent_at,
    )
