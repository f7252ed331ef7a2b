-- set on a standalone server, atomically. This script is the second half of one MULTI/EXEC
-- whose first half wrote the document to KEYS[1], a pending key named by this call alone:
-- the document never passes through Lua, which hashes every byte of every string it is given
-- (for a 10 KB conversation that was most of the script's cost). Here the pending key becomes
-- the record (with the TTL the pending key was written with: RENAME keeps it), and the index
-- entry and the index's TTL are written. When either key holds another type nothing at all
-- is written and the pending key is removed; every call before the RENAME is a pcall, so
-- that an ACL's refusal removes it too (should DEL be refused as well, its TTL does). Only
-- the three declared keys are touched (a shard behind one endpoint refuses any other), so
-- the trim is the store's next step, as in a cluster: past listLimit entries this returns
-- the oldest few and a few from a random place (member, score, …), for the store to drop
-- those whose record is gone.
-- KEYS: pending, record, index. ARGV: score, id, index ttl, listLimit. How many entries of
-- each kind to return is the store's TRIM_BATCH (4, checked by a test), and where the second
-- sample starts comes from the pending key's last 32 random bits (8 hex digits; 0 should
-- they ever not be hex, as the script has written by then): as arguments they cost
-- redis-server 3.0 k instructions a set (four ARGV strings fit a table of four; six made Lua
-- grow it once more).
-- The index's type is checked by ZCARD, which refuses any key but a sorted set and gives the
-- size the trim needs (the ZADD's reply adds the new entry): one call where TYPE and a ZCARD
-- after the ZADD were two (README, "Changes measured").
local TRIM_BATCH = 4
local function refuse(reply)
  redis.pcall('DEL', KEYS[1])
  return reply
end
local record_type = redis.pcall('TYPE', KEYS[2])
if record_type.err then
  return refuse(record_type)
end
local size = redis.pcall('ZCARD', KEYS[3])
local index_refusal = type(size) == 'table' and size.err
if index_refusal and string.sub(index_refusal, 1, 10) ~= 'WRONGTYPE ' then
  return refuse(size)
end
if record_type.ok ~= 'none' and record_type.ok ~= 'string' then
  return refuse(redis.error_reply('WRONGTYPE record'))
elseif index_refusal then
  return refuse(redis.error_reply('WRONGTYPE index'))
end
-- An ACL that allows SET but not RENAME refuses here: the pending key goes, the refusal stays.
local renamed = redis.pcall('RENAME', KEYS[1], KEYS[2])
if type(renamed) == 'table' and renamed.err then
  return refuse(renamed)
end
size = size + redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[3])
if size <= tonumber(ARGV[4]) then
  return {}
end
local from = (tonumber(string.sub(KEYS[1], -8), 16) or 0) % size
local candidates = redis.call('ZRANGE', KEYS[3], 0, TRIM_BATCH - 1, 'WITHSCORES')
for _, item in ipairs(redis.call('ZRANGE', KEYS[3], from, from + TRIM_BATCH - 1, 'WITHSCORES')) do
  table.insert(candidates, item)
end
return candidates
