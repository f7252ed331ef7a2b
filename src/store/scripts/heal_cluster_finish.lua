-- The second half of a heal one slot per command: for each entry heal_cluster.lua marked (score -inf),
-- remove it when its record is still gone or foreign, or put back the score of the record
-- that now belongs to this user (a same-score set raced in). An entry a set has rewritten
-- since is no longer at -inf and is left alone.
-- KEYS: index. ARGV: member, score ('' to remove), member, score, …
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == '-inf' then
    if ARGV[i + 1] == '' then
      removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    end
  end
end
return removed
