-- The index half of set in a cluster, one command so that a slot migration's ASK redirect
-- is followed for all of it. Returns the oldest entries (member, score, …) once the index is
-- over listLimit, for the store to trim those whose record is gone (records live in other
-- slots, out of this script's reach).
-- KEYS: index. ARGV: score, id, index ttl, listLimit, how many of the oldest entries to return.
local index_type = redis.call('TYPE', KEYS[1])['ok']
if index_type ~= 'none' and index_type ~= 'zset' then
  return redis.error_reply('WRONGTYPE index')
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[4]) then
  return {}
end
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
