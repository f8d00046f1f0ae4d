-- wrk script: POST /v1/assessment/submit with a new 10-question attempt (seed form) per request, for a random
-- pre-seeded learner. Every request is a new attempt: one attempt row, a new best-score check.
--   wrk -t1 -c64 -d15s -s bench/assess.lua http://127.0.0.1:8080 -- learners=20000 seed=1 tag=a1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua").assess_phase("assess", "/v1/assessment/submit")
