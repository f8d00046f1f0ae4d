-- wrk script: PATCH /v1/content/state/update (lms-service's route) with a typical mobile-app body:
-- 3 contents of the learner's batch (status 1 or 2, progress, lastAccessTime in Sunbird's format),
-- on views pre-seeded by seed.lua; the batch is registered by run.py.
--   wrk -t1 -c64 -d15s -s bench/state_update.lua http://127.0.0.1:8080 -- learners=20000 contents=5 seed=1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
c.state_phase("state_update", "PATCH", "/v1/content/state/update")
