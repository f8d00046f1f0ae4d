-- Merge entries into scope hashes, atomically, in one call for a whole write batch.
-- KEYS: the scope hashes. ARGV[1]: TTL in seconds (0: none). ARGV[2]: the position in KEYS
-- of a hash to mark as holding its whole scope (a fill from the database), or 0.
-- Then, for each key in order: the number of entries, and that many field/value pairs.
-- A value is "<version>|<json>"; an entry is only ever replaced by a higher version, so a
-- write that loses a race, or a fill from an older snapshot, never moves a value back.
local ttl = tonumber(ARGV[1])
local full = tonumber(ARGV[2])
local i = 3
for k = 1, #KEYS do
  local key = KEYS[k]
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do
    local field, val = ARGV[i], ARGV[i + 1]
    i = i + 2
    local cur = redis.call('HGET', key, field)
    if not cur or tonumber(string.match(cur, '^(%d+)|')) < tonumber(string.match(val, '^(%d+)|')) then
      redis.call('HSET', key, field, val)
    end
  end
  if k == full then redis.call('HSET', key, '', '1') end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return 1
