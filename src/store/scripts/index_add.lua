-- The index half of set one slot per command (a cluster, or a server that refuses
-- CROSSSLOT), one command so that a slot migration's ASK redirect is followed for all of it.
-- Returns the oldest entries (member, score, …) once the index is over listLimit, and as many
-- from a random place, for the store to trim those whose record is gone (records live in
-- other slots, out of this script's reach).
-- KEYS: index. ARGV: score, id, index ttl, listLimit, how many entries of each kind to
-- return, a random number (where the second sample starts).
-- The index's type is checked by ZCARD, which refuses any key but a sorted set and gives the
-- size the trim needs (the ZADD's reply adds the new entry), as in set.lua: a pcall, so that
-- a key of another type reads as WRONGTYPE on any Redis (a failed redis.call is an ERR before
-- 7.0), and any other refusal (an ACL) comes back as it is, before anything is written.
local size = redis.pcall('ZCARD', KEYS[1])
if type(size) == 'table' and size.err then
  if string.sub(size.err, 1, 10) == 'WRONGTYPE ' then
    return redis.error_reply('WRONGTYPE index')
  end
  return size
end
size = size + redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if size <= tonumber(ARGV[4]) then
  return {}
end
local batch = tonumber(ARGV[5])
local from = tonumber(ARGV[6]) % size
local candidates = redis.call('ZRANGE', KEYS[1], 0, batch - 1, 'WITHSCORES')
for _, item in ipairs(redis.call('ZRANGE', KEYS[1], from, from + batch - 1, 'WITHSCORES')) do
  table.insert(candidates, item)
end
return candidates
