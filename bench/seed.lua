-- wrk script: pre-seeds the learner set before the timed runs.
--   mode=start: POST /v1/view/start for every (learner, content) pair, learners x contents
--   mode=read:  POST /v1/view/read of all contents once per learner (warms the cache)
-- Pairs are split across wrk threads (thread t takes indices t-1, t-1+T, ...). A thread keeps
-- count of the answers to its seed requests (response hook); once all are in it prints
-- "SEED_THREAD_DONE" and stops. Connections that ask for more meanwhile send GET /health
-- (no side effects). wrk itself only exits at the end of -d, so bench/run.py sends it SIGINT
-- when every thread has reported; wrk then prints its summary and the BENCH_JSON line.
--   wrk -t1 -c64 -d3600s -s bench/seed.lua http://127.0.0.1:8080 -- mode=start learners=20000 contents=5 threads=1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
setup = c.setup

local mode, learners, contents, ids, nthreads, total
local next_index                 -- next global index this thread sends
seed_sent, seed_ok, seed_bad, padding = 0, 0, 0, 0
seed_total = 0
local finished = false
bad_status = {}

function init(args)
  local o = c.parse(args)
  mode = o.mode or "start"
  learners = c.num(o, "learners", 20000)
  contents = c.num(o, "contents", 5)
  ids = c.read_ids(contents)
  nthreads = c.num(o, "threads", 1)
  total = (mode == "start") and learners * contents or learners
  next_index = tid - 1
  dry_run_pending = (tid == 1)
  -- how many indices tid-1, tid-1+T, ... are below total
  if next_index < total then
    seed_total = math.floor((total - 1 - next_index) / nthreads) + 1
  end
end

local function finish()
  if not finished then
    finished = true
    io.write("SEED_THREAD_DONE ", tid, "\n")
    io.flush()
    wrk.thread:stop()
  end
end

function request()
  -- wrk calls request() once on the first thread's state before the run, to check the
  -- request, and never sends that one: give it a no-op so no seed item is lost.
  if dry_run_pending then
    dry_run_pending = false
    return wrk.format("GET", "/health")
  end
  if next_index < total then
    local k = next_index
    next_index = next_index + nthreads
    seed_sent = seed_sent + 1
    if mode == "start" then
      local i, j = math.floor(k / contents), (k % contents) + 1
      return c.post("/v1/view/start", c.start_body(c.user(i), c.content(j)))
    end
    return c.post("/v1/view/read", c.read_body(c.user(k), ids))
  end
  if seed_total == 0 then finish() end
  padding = padding + 1
  return wrk.format("GET", "/health")
end

function response(status, headers, body)
  if body and string.find(body, '"api.health"', 1, true) then return end
  if status >= 200 and status < 300 then
    seed_ok = seed_ok + 1
  else
    seed_bad = seed_bad + 1
    bad_status[tostring(status)] = (bad_status[tostring(status)] or 0) + 1
  end
  if seed_ok + seed_bad >= seed_total then finish() end
end

function done(summary, latency, requests)
  c.report("seed", summary, latency,
    { "seed_total", "seed_sent", "seed_ok", "seed_bad", "padding" }, { "bad_status" })
end
