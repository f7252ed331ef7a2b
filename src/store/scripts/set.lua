-- Sets on a standalone server, atomically: one or more (a batch: the sets of one turn), each
-- settled on its own. This script is the last part of one MULTI/EXEC whose earlier part wrote
-- each document to its pending key, named by its call alone: a document never passes through
-- Lua, which hashes every byte of every string it is given (for a 10 KB conversation that was
-- most of the script's cost). For each set the pending key becomes the record (with the TTL
-- the pending key was written with: RENAME keeps it), and the index entry and the index's TTL
-- are written. When either key holds another type nothing of that set is written and its
-- pending key is removed; every call before the RENAME is a pcall, so that an ACL's refusal
-- removes it too (should DEL be refused as well, its TTL does). Every call is a pcall, so a
-- refusal settles its own set and the next ones still run. Only the declared keys are
-- touched (a shard behind one endpoint refuses any other), so the trim is the store's next
-- step, as in a cluster: past listLimit entries a set's reply is the oldest few entries and a
-- few from a random place (member, score, …), for the store to drop those whose record is
-- gone.
-- KEYS: pending, record, index, for each set. ARGV: score and id for each set, then index
-- ttl and listLimit (a lone set's arguments are as they were before the script took
-- several). The reply: one item a set, in order, the sample (empty under listLimit) or the
-- set's refusal; a lone set's item is the whole reply. How many entries of each kind to
-- sample is the store's TRIM_BATCH (4, checked by a test), and where the second sample starts
-- comes from the pending key's last 32 random bits (8 hex digits; 0 should they ever not be
-- hex, as the script has written by then).
-- The index's type is checked by ZCARD, which refuses any key but a sorted set and gives the
-- size the trim needs (the ZADD's reply adds the new entry): one call where TYPE and a ZCARD
-- after the ZADD were two (docs/performance.md, "Changes measured").
local TRIM_BATCH = 4
local count = #KEYS / 3
local index_ttl, limit = ARGV[2 * count + 1], tonumber(ARGV[2 * count + 2])
local empty, replies = {}, {}
for i = 1, count do
  local pending, record, index = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local reply = empty
  -- One pass: `break` ends this set with `reply`; `refused` also removes its pending key.
  local refused
  repeat
    local record_type = redis.pcall('TYPE', record)
    if record_type.err then
      refused = record_type
      break
    end
    local size = redis.pcall('ZCARD', index)
    local index_refusal = type(size) == 'table' and size.err
    if index_refusal and string.sub(index_refusal, 1, 10) ~= 'WRONGTYPE ' then
      refused = size
      break
    end
    if record_type.ok ~= 'none' and record_type.ok ~= 'string' then
      refused = redis.error_reply('WRONGTYPE record')
      break
    elseif index_refusal then
      refused = redis.error_reply('WRONGTYPE index')
      break
    end
    -- An ACL that allows SET but not RENAME refuses here: the pending key goes, the refusal
    -- stays.
    local renamed = redis.pcall('RENAME', pending, record)
    if type(renamed) == 'table' and renamed.err then
      refused = renamed
      break
    end
    -- From here the record is written: a refusal (an ACL's) fails the set with its entry or
    -- the index's TTL unwritten, as a lost connection could; listByUser heals what it finds.
    local added = redis.pcall('ZADD', index, ARGV[2 * i - 1], ARGV[2 * i])
    if type(added) == 'table' then
      reply = added
      break
    end
    local expiring = redis.pcall('EXPIRE', index, index_ttl)
    if type(expiring) == 'table' then
      reply = expiring
      break
    end
    size = size + added
    if size > limit then
      local from = (tonumber(string.sub(pending, -8), 16) or 0) % size
      local oldest = redis.pcall('ZRANGE', index, 0, TRIM_BATCH - 1, 'WITHSCORES')
      local others = redis.pcall('ZRANGE', index, from, from + TRIM_BATCH - 1, 'WITHSCORES')
      if not oldest.err and not others.err then
        for _, item in ipairs(others) do
          table.insert(oldest, item)
        end
        reply = oldest
      end
    end
  until true
  if refused then
    redis.pcall('DEL', pending)
    reply = refused
  end
  if count == 1 then
    return reply
  end
  replies[i] = reply
end
return replies
