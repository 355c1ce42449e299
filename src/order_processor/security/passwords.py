"""PasswordManager: bcrypt at cost 12, hashing off the event loop."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from functools import cached_property

import bcrypt

from order_processor.exceptions import WeakPasswordException

BCRYPT_MAX_BYTES = 72
MIN_LENGTH = 8
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an uppercase letter", re.compile(r"[A-Z]")),
    ("a lowercase letter", re.compile(r"[a-z]")),
    ("a digit", re.compile(r"[0-9]")),
    ("a special character", re.compile(r"[^A-Za-z0-9]")),
)


@dataclass(frozen=True)
class PasswordManager:
    rounds: int = 12

    def validate_password_strength(self, password: str) -> None:
        """The seed's rules: at least 8 characters with an uppercase and a lowercase
        letter, a digit and a special character; and bcrypt's limit of 72 bytes, which
        would otherwise silently ignore the rest of a longer password."""
        problems = []
        if len(password) < MIN_LENGTH:
            problems.append(f"at least {MIN_LENGTH} characters")
        problems += [f"{name}" for name, pattern in RULES if not pattern.search(password)]
        if problems:
            raise WeakPasswordException("password needs " + ", ".join(problems))
        self._check_length(password)

    @staticmethod
    def _check_length(password: str) -> bytes:
        encoded = password.encode("utf-8")
        if len(encoded) > BCRYPT_MAX_BYTES:
            raise WeakPasswordException(
                f"password is {len(encoded)} bytes in UTF-8; bcrypt uses at most "
                f"{BCRYPT_MAX_BYTES}, so choose a shorter one"
            )
        return encoded

    async def hash_password(self, password: str) -> str:
        self.validate_password_strength(password)
        encoded = self._check_length(password)
        salt = bcrypt.gensalt(rounds=self.rounds)
        hashed: bytes = await asyncio.to_thread(bcrypt.hashpw, encoded, salt)
        return hashed.decode("ascii")

    async def verify_password(self, password: str, password_hash: str | None) -> bool:
        """`None` stands for an unknown user: the check still runs, against a hash no
        password matches, so it costs what a wrong password costs."""
        encoded = password.encode("utf-8")
        if password_hash is None or len(encoded) > BCRYPT_MAX_BYTES:
            password_hash = await asyncio.to_thread(lambda: self.unknown_user_hash)
            encoded = b"-"
        try:
            return await asyncio.to_thread(bcrypt.checkpw, encoded, password_hash.encode("ascii"))
        except ValueError:
            return False

    @cached_property
    def unknown_user_hash(self) -> str:
        """A hash no password matches, for checking against when the user does not exist,
        so that an unknown user costs the same bcrypt work as a wrong password."""
        secret = secrets.token_bytes(32).hex().encode()
        return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=self.rounds)).decode("ascii")
