-- The index half of delete one slot per command: removes the entry while its score is still
-- the deleted record's updatedAt. A set that rewrote the record since moved the score (or
-- wrote the same one again: then its entry goes too, and its next set puts it back).
-- KEYS: index. ARGV: member, score.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
