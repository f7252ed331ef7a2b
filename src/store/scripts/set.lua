-- set on a standalone server, atomically. This script is the second half of one MULTI/EXEC
-- whose first half wrote the document to KEYS[1], a pending key named by this call alone:
-- the document never passes through Lua, which hashes every byte of every string it is given
-- (for a 10 KB conversation that was most of the script's cost). Here the pending key becomes
-- the record, and the index entry and the index's TTL are written. When either key holds
-- another type nothing at all is written and the pending key is removed, so no key is left
-- behind (should DEL be refused too, the key's own TTL, the record's, removes it). Only the three
-- declared keys are touched (a shard behind one endpoint refuses any other), so the trim is
-- the store's next step, as in a cluster: past listLimit entries this returns the oldest few
-- and a few from a random place (member, score, …), for the store to drop those whose record
-- is gone.
-- The pending key was written with the record's TTL, which RENAME keeps: the record needs no
-- EXPIRE of its own. Only a set that adds an entry can take the index past listLimit, so only
-- then is the index counted.
-- KEYS: pending, record, index. ARGV: score, id, index ttl, listLimit, how many entries of
-- each kind to return, a random number (where the second sample starts).
local record_type = redis.call('TYPE', KEYS[2])['ok']
local index_type = redis.call('TYPE', KEYS[3])['ok']
local refused
if record_type ~= 'none' and record_type ~= 'string' then
  refused = 'WRONGTYPE record'
elseif index_type ~= 'none' and index_type ~= 'zset' then
  refused = 'WRONGTYPE index'
end
if refused then
  redis.pcall('DEL', KEYS[1])
  return redis.error_reply(refused)
end
-- An ACL that allows SET but not RENAME refuses here: the pending key goes, the refusal stays.
local renamed = redis.pcall('RENAME', KEYS[1], KEYS[2])
if type(renamed) == 'table' and renamed.err then
  redis.pcall('DEL', KEYS[1])
  return renamed
end
local added = redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if added == 0 then
  return {}
end
local size = redis.call('ZCARD', KEYS[3])
if size <= tonumber(ARGV[4]) then
  return {}
end
local batch = tonumber(ARGV[5])
local from = tonumber(ARGV[6]) % size
local candidates = redis.call('ZRANGE', KEYS[3], 0, batch - 1, 'WITHSCORES')
for _, item in ipairs(redis.call('ZRANGE', KEYS[3], from, from + batch - 1, 'WITHSCORES')) do
  table.insert(candidates, item)
end
return candidates
