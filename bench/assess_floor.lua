-- wrk script: POST /bench/floor with a new 10-question attempt (seed form) per request, for a random
-- pre-seeded learner. The floor for assess.lua: the same bodies to the no-I/O endpoint.
--   wrk -t1 -c64 -d15s -s bench/assess_floor.lua http://127.0.0.1:8080 -- learners=20000 seed=1 tag=a1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
local k, tag = 0, nil
c.single_endpoint("assess_floor", "/bench/floor", function(user, contents)
  k = k + 1
  tag = tag or c.opts.tag or "x"
  return c.assess_body(user, "att_" .. tag .. "_" .. tid .. "_" .. k, 1700000000000 + k * 100)
end)
