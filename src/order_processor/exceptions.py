"""The domain's exceptions: one root, the seed's names under it, and the reason codes.

Whether an error is worth retrying is a property of its type (`retryable`); only the
consumer runtime turns that into an SQS action. `code` is the stable reason code that
rejections and FAILED orders carry; every code is spelled once, here (`Reason`, or the
`code` of the exception that carries it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


class Reason(StrEnum):
    """Why a command was rejected (`command.rejected`) or an order FAILED."""

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
    DUPLICATE = "DUPLICATE"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INSUFFICIENT_ASSET_BALANCE = "INSUFFICIENT_ASSET_BALANCE"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
    UNSUPPORTED_COMMAND = "UNSUPPORTED_COMMAND"
    ORDER_VALUE_LIMIT = "ORDER_VALUE_LIMIT"
    ORDER_TOO_SMALL = "ORDER_TOO_SMALL"
    ASSET_NOT_FOUND = "ASSET_NOT_FOUND"


class OrderProcessorError(Exception):
    """Root of every error the project raises on purpose."""

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# Not found (permanent)


class NotFoundError(OrderProcessorError):
    code = "NOT_FOUND"


class UserNotFoundException(NotFoundError):
    code = "USER_NOT_FOUND"


class BalanceNotFoundException(NotFoundError):
    code = "BALANCE_NOT_FOUND"


class TransactionNotFoundException(NotFoundError):
    code = "TRANSACTION_NOT_FOUND"


class AssetNotFoundException(NotFoundError):
    code = "ASSET_NOT_FOUND"


class OrderNotFoundException(NotFoundError):
    code = "ORDER_NOT_FOUND"


class AssetBalanceNotFoundException(NotFoundError):
    code = "ASSET_BALANCE_NOT_FOUND"


# Business rules (permanent)


class InsufficientBalanceException(OrderProcessorError):
    code = "INSUFFICIENT_BALANCE"


class InsufficientAssetBalanceException(InsufficientBalanceException):
    code = "INSUFFICIENT_ASSET_BALANCE"


class EntityAlreadyExistsException(OrderProcessorError):
    """A conditional create found the entity already there; `existing` is its stored item."""

    code = "ALREADY_EXISTS"

    def __init__(self, message: str, existing: dict[str, Any] | None = None, **details: Any):
        super().__init__(message, **details)
        self.existing = existing


class InvalidTransitionException(OrderProcessorError):
    code = "INVALID_TRANSITION"


class AssetNotTradableException(OrderProcessorError):
    code = "ASSET_NOT_TRADABLE"


class InactiveUserException(OrderProcessorError):
    code = "USER_INACTIVE"


class LimitExceededException(OrderProcessorError):
    code = "LIMIT_EXCEEDED"


class StalePriceException(OrderProcessorError):
    code = "STALE_PRICE"


class StaleUpdateException(OrderProcessorError):
    """A change decided on a read of an entity that has changed since (its `version`
    moved): refused rather than written over the newer state. Read again, decide again."""

    code = "STALE_UPDATE"


class WeakPasswordException(OrderProcessorError):
    code = "WEAK_PASSWORD"


# Security (permanent)


class InvalidCredentialsException(OrderProcessorError):
    code = "INVALID_CREDENTIALS"


class TokenExpiredException(OrderProcessorError):
    code = "TOKEN_EXPIRED"


class TokenInvalidException(OrderProcessorError):
    code = "TOKEN_INVALID"


class AccessDeniedException(OrderProcessorError):
    code = "ACCESS_DENIED"


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

    code = "REJECTED"

    def __init__(
        self, reason: str, message: str, *, identity: Identity | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.reason = reason
        self.identity = identity


# Transient (retryable)


class LockAcquisitionException(OrderProcessorError):
    """The user's lock is held by another worker; hand the message back and try later."""

    retryable = True
    code = "LOCK_BUSY"


class OrderChangedException(OrderProcessorError):
    """The order is no longer in the state the command read (another delivery moved it):
    read again and decide again."""

    retryable = True
    code = "ORDER_CHANGED"


class ServiceUnavailableException(OrderProcessorError):
    """Throttling, timeouts and 5xx from AWS, translated at the store boundary."""

    retryable = True
    code = "SERVICE_UNAVAILABLE"
