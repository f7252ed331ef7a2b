-- delete, once the store has read the record (for its owner's index): removes the record, and
-- its entry from the index when one is declared, but only while the record is still the one
-- the store read (by the SHA-1 of its bytes). A set that landed between the read and this
-- script (a set made right after the delete, say) is kept: the delete came first. One script
-- on a standalone server; one slot per command it runs on the record alone, and
-- index_remove.lua follows.
-- KEYS: record[, index]. ARGV: SHA-1 hex of the record the store read[, member].
local record = redis.pcall('GET', KEYS[1])
if type(record) ~= 'string' or redis.sha1hex(record) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if #KEYS == 2 then
  -- An index of another type holds no entry to remove; the refusal goes back to the store.
  local removed = redis.pcall('ZREM', KEYS[2], ARGV[2])
  if type(removed) == 'table' and removed.err then
    return removed
  end
end
return 1
