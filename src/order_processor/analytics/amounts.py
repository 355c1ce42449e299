"""How the views add and divide amounts: the same rules in memory and in DynamoDB, so that
the two compare equal to the last digit."""

from __future__ import annotations

from decimal import Context, Decimal

COST_PLACES = Decimal("1E-10")  # cost, P&L and spread kept to 10 places (DynamoDB: 38 digits)
# Every sum of the views in this context: a quantity carries up to 33 digits (15 integer
# digits, 18 places), more than the default context's 28, which would round them silently.
EXACT = Context(prec=60)
