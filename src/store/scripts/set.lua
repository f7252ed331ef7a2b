-- set on a standalone server, atomically: the record, its index entry, the index's TTL, and
-- a trim of the index. When either key holds another type nothing at all is written.
-- KEYS: record, index. ARGV: json, ttl, score, id, index ttl, conversation key prefix,
-- listLimit, how many entries to check, a random number (where the second sample starts).
local record_type = redis.call('TYPE', KEYS[1])['ok']
if record_type ~= 'none' and record_type ~= 'string' then
  return redis.error_reply('WRONGTYPE record')
end
local index_type = redis.call('TYPE', KEYS[2])['ok']
if index_type ~= 'none' and index_type ~= 'zset' then
  return redis.error_reply('WRONGTYPE index')
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
-- Past listLimit entries, the oldest few and a few from a random place are checked, and
-- those whose record is gone (expired, deleted) are dropped: old entries go first, and the
-- random sample finds the rest, wherever live ones sit. A live record is never touched.
-- These record keys are not in KEYS: a standalone server allows that; a cluster uses
-- index_add.lua and checks the records itself.
local trimmed = 0
local size = redis.call('ZCARD', KEYS[2])
if size > tonumber(ARGV[7]) then
  local batch = tonumber(ARGV[8])
  local from = tonumber(ARGV[9]) % size
  local candidates = redis.call('ZRANGE', KEYS[2], 0, batch - 1)
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], from, from + batch - 1)) do
    table.insert(candidates, member)
  end
  for _, member in ipairs(candidates) do
    if member ~= ARGV[4] and redis.call('EXISTS', ARGV[6] .. member) == 0 then
      trimmed = trimmed + redis.call('ZREM', KEYS[2], member)
    end
  end
end
return trimmed
