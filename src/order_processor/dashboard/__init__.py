"""`order-processor dashboard`: a read-only web page over the same views and status the
CLI prints (analytics, status, order books, the ledger audit), refreshed every 2 s."""
