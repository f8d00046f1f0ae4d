-- wrk script: POST /bench/floor/assess of the fixed floor app (bench/floor_app.py) with a new 10-question attempt (seed form) per request, for a random
-- pre-seeded learner. The floor for assess.lua: the same bodies to the no-I/O endpoint.
--   wrk -t1 -c64 -d15s -s bench/assess_floor.lua http://127.0.0.1:8080 -- learners=20000 seed=1 tag=a1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua").assess_phase("assess_floor", "/bench/floor/assess")
