-- wrk script: the bodies of state_update.lua, to POST /bench/floor/state of the fixed floor app (bench/floor_app.py): the floor state_update is compared with.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
c.state_phase("state_floor", "POST", "/bench/floor/state")
