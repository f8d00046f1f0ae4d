-- wrk script: POST /v1/view/update only, on views pre-seeded by seed.lua.
-- Each request: a random learner of `learners`, a random content of `contents`, a random
-- progress 0-100 and position, timespent 5 s.
--   wrk -t1 -c64 -d15s -s bench/writes.lua http://127.0.0.1:8080 -- learners=20000 contents=5 seed=1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
c.single_endpoint("writes", "/v1/view/update", c.random_update_body)
