"""The domain's exceptions: one root, the seed's names under it, and the reason codes.

Whether an error is worth retrying is a property of its type (`retryable`); only the
consumer runtime turns that into an SQS action. `code` is the stable reason code that
rejections and FAILED orders carry; every code is spelled once, here, as a `Reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


class Reason(StrEnum):
    """Every code an error carries: why a command was rejected (`command.rejected`), why
    an order FAILED, and each exception's `code` (the CLI's `CODE: message`, the metrics'
    `reason` label). The README lists them all, in these three groups."""

    # Rejections
    MALFORMED_JSON = "MALFORMED_JSON"
    INVALID_COMMAND = "INVALID_COMMAND"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    UNAUTHORIZED = "UNAUTHORIZED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 (a reason code, not a secret)
    FORBIDDEN = "FORBIDDEN"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    UNKNOWN_USER = "UNKNOWN_USER"
    USER_INACTIVE = "USER_INACTIVE"
    UNKNOWN_ASSET = "UNKNOWN_ASSET"
    ASSET_NOT_TRADABLE = "ASSET_NOT_TRADABLE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    ALREADY_EXPIRED = "ALREADY_EXPIRED"
    CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
    UNSUPPORTED_COMMAND = "UNSUPPORTED_COMMAND"
    CURRENCY_NOT_ENABLED = "CURRENCY_NOT_ENABLED"
    FX_RATE_MISSING = "FX_RATE_MISSING"
    FX_RATE_STALE = "FX_RATE_STALE"
    CONVERSION_TOO_SMALL = "CONVERSION_TOO_SMALL"
    # Order failures (besides some of the above)
    INSUFFICIENT_ASSET_BALANCE = "INSUFFICIENT_ASSET_BALANCE"
    ORDER_VALUE_LIMIT = "ORDER_VALUE_LIMIT"
    ORDER_TOO_SMALL = "ORDER_TOO_SMALL"
    ASSET_NOT_FOUND = "ASSET_NOT_FOUND"
    INJECTED_FAULT = "INJECTED_FAULT"  # only under fault injection (saga/faults.py)
    # The other exceptions' codes
    ERROR = "ERROR"
    NOT_FOUND = "NOT_FOUND"
    BALANCE_NOT_FOUND = "BALANCE_NOT_FOUND"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    ASSET_BALANCE_NOT_FOUND = "ASSET_BALANCE_NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    STALE_PRICE = "STALE_PRICE"
    STALE_UPDATE = "STALE_UPDATE"
    WEAK_PASSWORD = "WEAK_PASSWORD"  # noqa: S105 (a reason code, not a secret)
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 (a reason code, not a secret)
    ACCESS_DENIED = "ACCESS_DENIED"
    REJECTED = "REJECTED"
    LOCK_BUSY = "LOCK_BUSY"
    ORDER_CHANGED = "ORDER_CHANGED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


class OrderProcessorError(Exception):
    """Root of every error the project raises on purpose."""

    retryable: ClassVar[bool] = False
    code: ClassVar[Reason] = Reason.ERROR

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# Not found (permanent)


class NotFoundError(OrderProcessorError):
    code = Reason.NOT_FOUND


class UserNotFoundException(NotFoundError):
    code = Reason.UNKNOWN_USER


class BalanceNotFoundException(NotFoundError):
    code = Reason.BALANCE_NOT_FOUND


class TransactionNotFoundException(NotFoundError):
    code = Reason.TRANSACTION_NOT_FOUND


class AssetNotFoundException(NotFoundError):
    code = Reason.ASSET_NOT_FOUND


class OrderNotFoundException(NotFoundError):
    code = Reason.ORDER_NOT_FOUND


class AssetBalanceNotFoundException(NotFoundError):
    code = Reason.ASSET_BALANCE_NOT_FOUND


# Business rules (permanent)


class InsufficientBalanceException(OrderProcessorError):
    code = Reason.INSUFFICIENT_BALANCE


class InsufficientAssetBalanceException(InsufficientBalanceException):
    code = Reason.INSUFFICIENT_ASSET_BALANCE


class EntityAlreadyExistsException(OrderProcessorError):
    """A conditional create found the entity already there; `existing` is its stored item."""

    code = Reason.ALREADY_EXISTS

    def __init__(self, message: str, existing: dict[str, Any] | None = None, **details: Any):
        super().__init__(message, **details)
        self.existing = existing


class InvalidTransitionException(OrderProcessorError):
    code = Reason.INVALID_TRANSITION


class AssetNotTradableException(OrderProcessorError):
    code = Reason.ASSET_NOT_TRADABLE


class InactiveUserException(OrderProcessorError):
    code = Reason.USER_INACTIVE


class LimitExceededException(OrderProcessorError):
    code = Reason.LIMIT_EXCEEDED


class StalePriceException(OrderProcessorError):
    code = Reason.STALE_PRICE


class StaleUpdateException(OrderProcessorError):
    """A change decided on a read of an entity that has changed since (its `version`
    moved): refused rather than written over the newer state. Read again, decide again."""

    code = Reason.STALE_UPDATE


class WeakPasswordException(OrderProcessorError):
    code = Reason.WEAK_PASSWORD


# Security (permanent)


class InvalidCredentialsException(OrderProcessorError):
    code = Reason.INVALID_CREDENTIALS


class TokenExpiredException(OrderProcessorError):
    code = Reason.TOKEN_EXPIRED


class TokenInvalidException(OrderProcessorError):
    code = Reason.TOKEN_INVALID


class AccessDeniedException(OrderProcessorError):
    code = Reason.ACCESS_DENIED


class StepFailure(OrderProcessorError):
    """A permanent reason an order cannot go on (priced out, a step that failed for good):
    the saga ends it FAILED with `code` as its failure_reason."""

    def __init__(self, code: Reason, message: str | None = None) -> None:
        super().__init__(message or code)
        self.code = code  # type: ignore[misc]


# Commands


@dataclass(frozen=True)
class Identity:
    """Who a rejection may name: only what a verified token vouches for."""

    username: str | None = None
    command_id: str | None = None
    issued_at: datetime | None = None  # the command's time, once it has parsed


class CommandRejected(OrderProcessorError):
    """A command that can never succeed: answered with `command.rejected` and removed.
    `identity` is set once the sender is authenticated; until then a rejection names
    nobody."""

    code = Reason.REJECTED

    def __init__(
        self, reason: Reason, message: str, *, identity: Identity | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.reason = reason
        self.identity = identity


# Transient (retryable)


class FenceConflictException(OrderProcessorError):
    """The user's fence refused the write: another writer changed the user's books since
    the read (the token moved), a lease holds the user, or another write of the user was in
    flight. Decide again from a fresh read, or hand the message back and try later."""

    retryable = True
    code = Reason.LOCK_BUSY


class OrderChangedException(OrderProcessorError):
    """The order is no longer in the state the command read (another delivery moved it):
    read again and decide again."""

    retryable = True
    code = Reason.ORDER_CHANGED


class ServiceUnavailableException(OrderProcessorError):
    """Throttling, timeouts and 5xx from AWS, translated at the store boundary."""

    retryable = True
    code = Reason.SERVICE_UNAVAILABLE
