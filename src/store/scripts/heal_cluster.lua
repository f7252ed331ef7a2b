-- In a cluster the records live in other slots than the index, so this sees only the index:
-- it removes each entry whose score is still the one the list read. set writes the record
-- before its entry, and the store re-reads the records after this to put back any entry a
-- same-score set raced into.
-- KEYS: index. ARGV: member, score, member, score, …
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
