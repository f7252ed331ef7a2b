-- The index half of set one slot per command (a cluster, or a server that refuses
-- CROSSSLOT), one command so that a slot migration's ASK redirect is followed for all of it.
-- Returns the oldest entries (member, score, …) once the index is over listLimit, and as many
-- from a random place, for the store to trim those whose record is gone (records live in
-- other slots, out of this script's reach).
-- KEYS: index. ARGV: score, id, index ttl, listLimit, how many entries of each kind to
-- return, a random number (where the second sample starts).
local index_type = redis.call('TYPE', KEYS[1])['ok']
if index_type ~= 'none' and index_type ~= 'zset' then
  return redis.error_reply('WRONGTYPE index')
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local size = redis.call('ZCARD', KEYS[1])
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
