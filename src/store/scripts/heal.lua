-- Removes index entries whose conversation is gone (no key, or a key of another type) or is
-- now another user's, but only while the entry's score and the record are still what the
-- list saw: a concurrent set is never undone. No JSON is parsed here: a foreign record is
-- recognised by the SHA-1 of the bytes the list read (Redis's own single thread stays cheap
-- whatever the records hold).
-- KEYS: index, then one record per entry. ARGV: per entry member, score, and the SHA-1 hex
-- of the foreign record the list saw ('' when the record was missing: MGET's nil, also for a
-- key of another type).
local removed = 0
for i = 2, #KEYS do
  local at = (i - 2) * 3
  local member, score, seen = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if redis.call('ZSCORE', KEYS[1], member) == score then
    local stale
    if seen == '' then
      -- Still missing, or a key of another type (which holds no conversation either).
      stale = redis.call('TYPE', KEYS[i])['ok'] ~= 'string'
    else
      local record = redis.pcall('GET', KEYS[i])
      stale = type(record) == 'string' and redis.sha1hex(record) == seen
    end
    if stale then
      removed = removed + redis.call('ZREM', KEYS[1], member)
    end
  end
end
return removed
