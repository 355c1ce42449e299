"""The saga engine: each order's steps, committed one TransactWriteItems at a time under
the user's fenced lock, resumed from the stored marker, compensated on permanent failure."""
