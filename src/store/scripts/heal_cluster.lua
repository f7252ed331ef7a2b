-- The first half of a heal one slot per command (a cluster, or a server that refuses
-- CROSSSLOT). The records live in other slots than the index, so this sees only the index: it
-- marks each entry whose score is still the one the list read by moving it to this heal's own
-- mark, a score far below any real one (to the bottom, where lists reach it last). Nothing is
-- removed yet, so a heal that never finishes loses nothing: a set's ZADD overwrites the mark,
-- and heal_cluster_finish.lua removes or restores what still holds this heal's mark once the
-- store has read the records again. Each heal has its own mark: with one shared mark (-inf), a
-- heal whose read was stale could finish on an entry that a set had restored and another heal
-- had marked since, and drop a live conversation from its user's list.
-- KEYS: index. ARGV: the mark, then member, score, member, score, …  Returns the members it
-- marked.
local marked = {}
for i = 2, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    table.insert(marked, ARGV[i])
  end
end
return marked
