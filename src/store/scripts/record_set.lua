-- The record half of set one slot per command on a server that refuses SET's GET option
-- (Redis before 6.2; from 6.2 on `SET … GET` is that half, at about a sixth of this script's
-- cost to the server, which copies the document into Lua and out again): refused when the
-- key holds another type. KEYS: record. ARGV: json, ttl.
local record_type = redis.call('TYPE', KEYS[1])['ok']
if record_type ~= 'none' and record_type ~= 'string' then
  return redis.error_reply('WRONGTYPE record')
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 0
