-- set on a standalone server, atomically: the record, its index entry, the index's TTL, and
-- a trim of the index. When either key holds another type nothing at all is written.
-- KEYS: record, index. ARGV: json, ttl, score, id, index ttl, conversation key prefix,
-- listLimit, how many of the oldest entries to check.
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
-- The index only grows past listLimit with conversations the user no longer has (or old
-- ones): the oldest entries whose record is gone are dropped. A live record is never touched.
local trimmed = 0
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[7]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[8]) - 1)
  for _, member in ipairs(oldest) do
    if member ~= ARGV[4] and redis.call('EXISTS', ARGV[6] .. member) == 0 then
      trimmed = trimmed + redis.call('ZREM', KEYS[2], member)
    end
  end
end
return trimmed
