-- The second half of a heal one slot per command: for each entry heal_cluster.lua marked with
-- this heal's mark, remove it when its record is still gone or foreign, or put back the score
-- of the record that now belongs to this user (a same-score set raced in). An entry a set has
-- rewritten since, or another heal has marked since, no longer holds this mark and is left
-- alone. Scores are compared as numbers: Redis prints the mark its own way.
-- KEYS: index. ARGV: the mark, then member, score ('' to remove), member, score, …
local mark = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == mark then
    if ARGV[i + 1] == '' then
      removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    end
  end
end
return removed
