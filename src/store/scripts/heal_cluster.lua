-- The first half of a heal one slot per command (a cluster, or a server that refuses CROSSSLOT).
-- The records live in other slots than the index, so this sees only the index: it marks each entry whose score is still the one the list read by
-- moving it to -inf (to the bottom, where lists reach it last). Nothing is removed yet, so a
-- heal that never finishes loses nothing: a set's ZADD overwrites the mark, and
-- heal_cluster_finish.lua removes or restores what is still marked once the store has read
-- the records again.
-- KEYS: index. ARGV: member, score, member, score, …  Returns the members it marked.
local marked = {}
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], '-inf', ARGV[i])
    table.insert(marked, ARGV[i])
  end
end
return marked
