-- wrk script: POST /v1/view/read only. Each request reads all `contents` contents of the
-- collection for a random pre-seeded learner (the seed pass read every learner once, so the
-- cache holds every scope: this measures warm reads).
--   wrk -t1 -c64 -d15s -s bench/reads.lua http://127.0.0.1:8080 -- learners=20000 contents=5 seed=1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
local ids = {}
c.single_endpoint("reads", "/v1/view/read", function(user, contents)
  ids[contents] = ids[contents] or c.read_ids(contents)
  return c.read_body(user, ids[contents])
end)
