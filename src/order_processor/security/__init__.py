"""PasswordManager (bcrypt), TokenManager (python-jose JWT), AuditLogger (structlog)."""

from order_processor.security.audit import AuditLogger
from order_processor.security.passwords import PasswordManager
from order_processor.security.tokens import TokenClaims, TokenManager

__all__ = ["AuditLogger", "PasswordManager", "TokenClaims", "TokenManager"]
