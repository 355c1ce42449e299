"""The order gateway: the HTTP API end users call (FastAPI), the trusted producer the
command contract asks for. It authenticates the user, mints order ids and sets the FIFO
group itself; it reads through the read model (Redis) and falls back to DynamoDB.

`create_app(Gateway(...))` (`app`) builds the application from its ports (`ports`) and
limits; nothing is built at import time. One module per job: `problems` (RFC 9457),
`middleware` (request ids, access log, body limits, content types, per-address rates),
`ratelimit`, `ids` (order ids, signed cursors), `auth`, `sessions`, `orders`, `accounts`,
`stream` (Server-Sent Events through one dispatcher)."""
