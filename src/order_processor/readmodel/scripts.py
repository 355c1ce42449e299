"""The read model's Lua scripts: each change Redis makes is one script, so no reader ever
sees half of it and no two writers interleave.

Keys (under the model's namespace P, its prefix as the hash tag: `{op:readmodel}`, so a
cluster keeps them all in one slot; each script is given every key it touches in KEYS and
builds none): `P:order:<id>` a hash {sequence, username, body, and
`rejected` once a placeholder's command is rejected}; `P:user:<name>:generation`,
`P:user:<name>:<document>`, `P:user:<name>:events` (the stream, one field `event`),
`P:user:<name>:origin` (the stream's first position ever and the newest trimmed),
`P:user:<name>:seen` (a sorted set of event ids by arrival time: the duplicates' window,
`ttl` long and at most twice the stream's length).
Every key written gets the TTL again.
"""

from __future__ import annotations

# KEYS: order, generation, stream, stream origin, seen, documents...
# ARGV: event_id, event_body, kind ("order" | "rejected" | "other"), sequence, order_body,
#       username, reason, ttl_ms, stream_length, seen_limit
APPLY = """
local order_key, generation_key, stream_key = KEYS[1], KEYS[2], KEYS[3]
local origin_key, seen_key = KEYS[4], KEYS[5]
local event_id, body, kind = ARGV[1], ARGV[2], ARGV[3]
local sequence, order_body, username, reason = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local ttl, length, seen_limit = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', seen_key, '-inf', now - ttl)
if redis.call('ZSCORE', seen_key, event_id) then
  return 0
end
redis.call('ZADD', seen_key, now, event_id)
local seen = redis.call('ZCARD', seen_key)
if seen > seen_limit then
  redis.call('ZREMRANGEBYRANK', seen_key, 0, seen - seen_limit - 1)
end
redis.call('PEXPIRE', seen_key, ttl)
if kind == 'order' then
  -- newer, and of the same user: an event of another user never takes over an order
  local kept = redis.call('HMGET', order_key, 'sequence', 'username')
  if not kept[1] or (tonumber(kept[1]) < sequence and kept[2] == username) then
    redis.call('DEL', order_key)
    redis.call('HSET', order_key, 'sequence', sequence, 'username', username, 'body', order_body)
    redis.call('PEXPIRE', order_key, ttl)
  end
elseif kind == 'rejected' then
  local kept = redis.call('HMGET', order_key, 'sequence', 'username')
  if kept[1] == '0' and kept[2] == username then
    redis.call('HSET', order_key, 'rejected', reason)
    redis.call('PEXPIRE', order_key, ttl)
  end
end
redis.call('INCR', generation_key)
redis.call('PEXPIRE', generation_key, ttl)
for index = 6, #KEYS do
  redis.call('DEL', KEYS[index])
end
local created = redis.call('EXISTS', stream_key) == 0
local excess = redis.call('XLEN', stream_key) + 1 - length
if excess > 0 then
  -- the newest entry the trim drops: a position before it is a gap (see `READ`)
  local dropped = redis.call('XRANGE', stream_key, '-', '+', 'COUNT', excess)
  redis.call('HSET', origin_key, 'trimmed', dropped[#dropped][1])
end
local position = redis.call('XADD', stream_key, 'MAXLEN', length, '*', 'event', body)
if created then
  -- a stream made anew (the first, or after the old one expired): what a position from
  -- before it named is gone, so it reads as a gap (see `GAP`)
  redis.call('HSET', origin_key, 'first', position)
end
redis.call('PEXPIRE', stream_key, ttl)
redis.call('PEXPIRE', origin_key, ttl)
return 1
"""

# KEYS: order. ARGV: sequence, username, body, ttl_ms
FILL_ORDER = """
local kept = redis.call('HGET', KEYS[1], 'sequence')
if kept and tonumber(kept) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'sequence', ARGV[1], 'username', ARGV[2], 'body', ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""

# KEYS: generation, document. ARGV: generation, body, ttl_ms
FILL_DOCUMENT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], current, 'PX', tonumber(ARGV[3]))
redis.call('SET', KEYS[2], ARGV[2], 'PX', tonumber(ARGV[3]))
return 1
"""

# KEYS: stream, its origin. ARGV: exclusive start ("-" for the oldest), limit.
# Returns {exists, newest trimmed, first ever, entries}: one consistent view of the stream.
READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, '0-0', '0-0', {}}
end
local kept = redis.call('HMGET', KEYS[2], 'trimmed', 'first')
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local trimmed, origin = kept[1] or '0-0', kept[2] or first[1][1]
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
return {1, trimmed, origin, entries}
"""
