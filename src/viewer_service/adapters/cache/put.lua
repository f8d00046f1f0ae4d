-- Merge entries into one scope hash, atomically.
-- KEYS[1]: the scope hash. ARGV[1]: TTL in seconds (0: none). ARGV[2]: "1" marks the hash
-- as holding the whole scope (a fill from the database). Then field/value pairs.
-- A value is "<version>|<json>"; an entry is only ever replaced by a higher version, so a
-- write that loses a race, or a fill from an older snapshot, never moves a value back.
local key = KEYS[1]
for i = 3, #ARGV, 2 do
  local field, val = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', key, field)
  if not cur or tonumber(string.match(cur, '^(%d+)|')) < tonumber(string.match(val, '^(%d+)|')) then
    redis.call('HSET', key, field, val)
  end
end
if ARGV[2] == '1' then redis.call('HSET', key, '', '1') end
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('EXPIRE', key, ttl) end
return 1
