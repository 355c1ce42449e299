"""The saga's steps, each named by the state its write leaves. The name is stored as an
order's `step` (the last step committed: the ledger audit reads how an order ended from
it), labels `saga_step_seconds{step}`, and is what the fault hook
(`ORDER_PROCESSOR_FAULT=crash-after=<step>`) matches; so the values never change."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    ACCEPTED = "accepted"
    HELD = "held"  # a resting order's hold set aside: QUEUED
    DEBITED = "debited"  # PROCESSING, paid for (a v1 worker's stopping place)
    COMPLETED = "completed"
    FAILED = "failed"  # nothing moved
    CANCELLED = "cancelled"  # hold released
    EXPIRED = "expired"  # hold released
    RELEASED = "released"  # FAILED when QUEUED: its hold released
    REFUNDED = "refunded"  # FAILED after the debit: given back
    FUNDS = "funds"  # a deposit or a withdrawal (no order)
    CONVERTED = "converted"  # a conversion between currencies (no order)
    # For the fault hook only, written by no saga: the limit matcher's and the analytics
    # worker's.
    TRAILED = "trailed"  # after moving trailing stops
    MATCHED = "matched"  # after its query, before it sends
    RATED = "rated"  # after writing an UpdateRate's rate, its message not yet deleted
    ANALYTICS = "analytics"  # a final event applied, its message not yet deleted
    # The group commit's (a batch of one user's commands): decided in memory, not yet
    # written; and written and announced, its messages not yet deleted.
    GROUPED = "grouped"
    ANNOUNCED = "announced"
