-- wrk script for bench/scale.py: the bulk-loaded data set, spread across the whole table.
-- Learner u (0 .. learners-1) -> "scale_u<u>", collection c (1 .. cols) -> "scale_c<c>",
-- content k (1 .. per) -> "do_s<c>_<k>", one context "scale_batch"; scope s = u * cols + c - 1.
--   mode=writes: POST /v1/view/update of a random row of the whole table (progress 1-99)
--   mode=reads:  POST /v1/view/read of one of `set` scopes spread over the table (pre-read by
--                mode=list, so cached), all `per` contents of its collection
--   mode=list:   POST /v1/view/read of `set` scopes, each once, then the thread stops (prints
--                SEED_THREAD_DONE; bench/scale.py then interrupts wrk). offset=<n> picks which scopes:
--                scope i of the list is (i * 7919 + offset) mod scopes, so distinct scopes for
--                i < scopes. With a fresh cache every read of a list is a cache miss ("cold").
--                absent=1: the same reads for learners that have no rows ("scale_absent_u<u>"): a
--                warm-up of the read path (connections, prepared statements) that fills no real scope.
--   wrk -t1 -c16 -d5s -s bench/scale.lua http://127.0.0.1:8080 -- mode=writes learners=50000
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
setup = c.setup
c.install_diag()

local STRIDE = 7919  -- prime: coprime with the scope counts used (learners * 10, powers of 10)
local mode, learners, cols, per, set, offset, nthreads, scopes, user_prefix
local next_i, sent = 0, 0
local ids = {}
list_total, list_done = 0, 0

function init(args)
  local o = c.parse(args)
  mode = o.mode or "writes"
  learners = c.num(o, "learners", 50)
  cols = c.num(o, "cols", 10)
  per = c.num(o, "per", 20)
  scopes = learners * cols
  set = math.min(c.num(o, "set", 2000), scopes)
  offset = c.num(o, "offset", 0)
  user_prefix = (o.absent == "1") and "scale_absent_u" or "scale_u"
  nthreads = c.num(o, "threads", 1)
  c.seed_random(o, tid)
  next_i = tid - 1
  dry_run_pending = (tid == 1)
  if next_i < set then list_total = math.floor((set - 1 - next_i) / nthreads) + 1 end
  for col = 1, cols do
    local t = {}
    for k = 1, per do t[k] = '"do_s' .. col .. '_' .. k .. '"' end
    ids[col] = '[' .. table.concat(t, ",") .. ']'
  end
end

local function body(u, col, content_json, extra)
  return '{"request":{"userId":"' .. user_prefix .. u .. '","collectionId":"scale_c' .. col ..
    '","contextId":"scale_batch","contentId":' .. content_json .. (extra or '') .. '}}'
end

local function read_scope(s)
  local u, col = math.floor(s / cols), s % cols + 1
  return c.post("/v1/view/read", body(u, col, ids[col]))
end

local function list_scope(i)
  return (i * STRIDE + offset) % scopes
end

function request()
  if mode == "writes" then
    local col = math.random(cols)
    return c.post("/v1/view/update", body(math.random(0, learners - 1), col,
      '"do_s' .. col .. '_' .. math.random(per) .. '"',
      ',"progress":' .. math.random(1, 99) .. ',"progressDetails":{"position":' ..
      math.random(0, 3600) .. '},"timespent":5'))
  elseif mode == "reads" then
    return read_scope(list_scope(math.random(0, set - 1)))
  end
  -- mode=list. wrk asks the first thread for one request before the run and never sends it.
  if dry_run_pending then
    dry_run_pending = false
    return wrk.format("GET", "/health")
  end
  if next_i >= set then
    if sent >= list_total then
      io.write("SEED_THREAD_DONE ", tid, "\n")
      io.flush()
      wrk.thread:stop()  -- answers still in flight are not counted: every one counted was a list read
    end
    return wrk.format("GET", "/health")
  end
  local i = next_i
  next_i = next_i + nthreads
  sent = sent + 1
  return read_scope(list_scope(i))
end

function done(summary, latency, requests)
  c.report(mode, summary, latency, { "list_total" }, { "diag" })
end
