-- wrk script: Kolibri's progress API, as its learner UI calls it (bench/peers/kolibri.py runs it).
--   mode=write: PUT /api/logger/trackprogress/<session_id>/ for a random logged-in learner and one
--     of their open content sessions: progress 0.00-1.00 (absolute), time_spent_delta 5 s and a
--     position in extra_fields (what viewer-service's view/update sends: progress, position,
--     timespent 5).
--   mode=read: GET /api/content/contentnodeprogress/?parent=<topic> for a random learner: their
--     progress on every content of the topic (what view/read of the collection's contents answers).
-- Every request carries the learner's session cookie; writes also the CSRF cookie and header, as
-- Kolibri requires (Django session auth + CsrfViewMiddleware).
--   wrk -t1 -c64 -d5s -s bench/peers/kolibri.lua http://127.0.0.1:PORT -- mode=write creds=FILE topic=ID seed=1
-- FILE: one line per learner, tab-separated: session cookie, CSRF token, comma-separated session ids.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "../common.lua")

setup = c.setup

local learners = {}
local mode, read_path

init = function(args)
  local o = c.parse(args)
  mode = o.mode or "write"
  read_path = "/api/content/contentnodeprogress/?parent=" .. (o.topic or "")
  for line in io.lines(o.creds) do
    local cookie, csrf, sids = string.match(line, "^([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if cookie then
      local ids = {}
      for sid in string.gmatch(sids, "[^,]+") do ids[#ids + 1] = sid end
      learners[#learners + 1] = {
        sids = ids,
        write_headers = {
          ["Content-Type"] = "application/json",
          ["Cookie"] = "kolibri=" .. cookie .. "; kolibri_csrftoken=" .. csrf,
          ["X-CSRFToken"] = csrf,
        },
        read_headers = { ["Cookie"] = "kolibri=" .. cookie },
      }
    end
  end
  assert(#learners > 0, "no learners in " .. tostring(o.creds))
  c.seed_random(o, tid)
end

request = function()
  local l = learners[math.random(#learners)]
  if mode == "read" then
    return wrk.format("GET", read_path, l.read_headers)
  end
  local sid = l.sids[math.random(#l.sids)]
  local body = '{"progress":' .. (math.random(0, 100) / 100) .. ',"time_spent_delta":5,' ..
    '"extra_fields":{"position":' .. math.random(0, 3600) .. '}}'
  return wrk.format("PUT", "/api/logger/trackprogress/" .. sid .. "/", l.write_headers, body)
end

done = function(summary, latency, requests)
  c.report("kolibri", summary, latency)  -- main state: init (and mode) ran only in the threads
end
