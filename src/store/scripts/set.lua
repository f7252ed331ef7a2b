-- set on a standalone server, atomically: the record, its index entry and the index's TTL.
-- When either key holds another type nothing at all is written. Only the two declared keys
-- are touched (a shard behind one endpoint refuses any other), so the trim is the store's
-- next step, as in a cluster: past listLimit entries this returns the oldest few and a few
-- from a random place (member, score, …), for the store to drop those whose record is gone.
-- KEYS: record, index. ARGV: json, ttl, score, id, index ttl, listLimit, how many entries of
-- each kind to return, a random number (where the second sample starts).
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
local size = redis.call('ZCARD', KEYS[2])
if size <= tonumber(ARGV[6]) then
  return {}
end
local batch = tonumber(ARGV[7])
local from = tonumber(ARGV[8]) % size
local candidates = redis.call('ZRANGE', KEYS[2], 0, batch - 1, 'WITHSCORES')
for _, item in ipairs(redis.call('ZRANGE', KEYS[2], from, from + batch - 1, 'WITHSCORES')) do
  table.insert(candidates, item)
end
return candidates
