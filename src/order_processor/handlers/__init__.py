"""From messages to the saga: admission (parse, authenticate, authorise), the order
worker's command handler, the limit matcher (price updates) and the sweeper (expiry and
recovery)."""
