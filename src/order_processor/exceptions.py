"""The domain's exceptions: one root, the seed's names under it.

Whether an error is worth retrying is a property of its type (`retryable`); only the
consumer runtime turns that into an SQS action. `code` is the stable reason code that
rejections and FAILED orders carry.
"""

from __future__ import annotations

from typing import Any, ClassVar


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


# Transient (retryable)


class LockAcquisitionException(OrderProcessorError):
    """The user's lock is held by another worker; hand the message back and try later."""

    retryable = True
    code = "LOCK_BUSY"


class ServiceUnavailableException(OrderProcessorError):
    """Throttling, timeouts and 5xx from AWS, translated at the store boundary."""

    retryable = True
    code = "SERVICE_UNAVAILABLE"
