-- wrk script: the FLOOR. POST /bench/floor of the fixed floor app (bench/floor_app.py, started by run.py)
-- answers a constant JSON envelope without any I/O. The bodies are built exactly like
-- writes.lua builds its update bodies (same size, same client-side cost), so the floor is what
-- the HTTP stack + framework + this load generator can do on this machine.
--   wrk -t1 -c64 -d15s -s bench/floor.lua http://127.0.0.1:8080 -- learners=20000 contents=5 seed=1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
c.single_endpoint("floor", "/bench/floor", c.random_update_body)
