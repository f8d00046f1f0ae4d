-- Shared helpers for the wrk scripts in bench/ (loaded with dofile by each script).
--
-- wrk runs the script once in its main Lua state (setup, done) and once per thread
-- (init, request, response). Arguments after `--` on the wrk command line reach init() as
-- args[1..n] (args[0] is the URL); they are key=value pairs, e.g. learners=20000 seed=7.
--
-- Request bodies follow the service API (docs/api.md):
--   learner i  -> userId "bench_u<i>"        (i in 0 .. learners-1, pre-seeded by seed.lua)
--   content j  -> contentId "do_bench_<j>"   (j in 1 .. contents)
--   one collection "bench_course" and one context "bench_batch".

local M = {}

M.COLLECTION = "bench_course"
M.CONTEXT = "bench_batch"

local threads = {}

-- main state: number the threads (1-based) so each gets its own random stream.
function M.setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function M.parse(args)
  local o = {}
  local i = 1
  while args[i] ~= nil do
    local k, v = string.match(args[i], "^([%w_]+)=(.*)$")
    if k then o[k] = v end
    i = i + 1
  end
  return o
end

function M.num(o, key, default)
  local v = o[key]
  if v == nil or v == "" then return default end
  return tonumber(v)
end

-- A random stream per thread and per run: seed * a large prime + thread id.
function M.seed_random(o, tid)
  local seed = M.num(o, "seed", 1)
  math.randomseed(seed * 1000003 + tid * 7919)
  -- LuaJIT's first draws after seeding are fine; discard a few anyway.
  for _ = 1, 5 do math.random() end
end

function M.user(i) return "bench_u" .. i end
function M.content(j) return "do_bench_" .. j end

local function keys(user, content)
  return '{"request":{"userId":"' .. user .. '","contentId":"' .. content ..
    '","collectionId":"' .. M.COLLECTION .. '","contextId":"' .. M.CONTEXT .. '"'
end

function M.start_body(user, content)
  return keys(user, content) .. '}}'
end

function M.update_body(user, content, progress, position)
  return keys(user, content) .. ',"progress":' .. progress ..
    ',"progressDetails":{"position":' .. position .. '},"timespent":5}}'
end

function M.end_body(user, content)
  return keys(user, content) .. '}}'
end

function M.read_ids(contents)
  local ids = {}
  for j = 1, contents do ids[j] = '"' .. M.content(j) .. '"' end
  return '[' .. table.concat(ids, ",") .. ']'
end

function M.read_body(user, ids_json)
  return '{"request":{"userId":"' .. user .. '","contentId":' .. ids_json ..
    ',"collectionId":"' .. M.COLLECTION .. '","contextId":"' .. M.CONTEXT .. '"}}'
end

-- One update body for a random pre-seeded view of `user`: random progress and position.
function M.random_update_body(user, contents)
  return M.update_body(user, M.content(math.random(contents)), math.random(0, 100), math.random(0, 3600))
end

-- A 10-question attempt in the seed's submit form: ASSESS events (V3 telemetry), one per
-- question, for attempt `attempt` of content 1 of the collection. Times are fixed in the past.
function M.assess_body(user, attempt, ets)
  local events = {}
  for q = 1, 10 do
    local score = math.random(0, 1)
    events[q] = '{"eid":"ASSESS","ets":' .. (ets + q) .. ',"ver":"3.0","edata":{"score":' .. score ..
      ',"duration":' .. math.random(1, 60) .. ',"resvalues":[{"1":"{\\"text\\":\\"answer\\"}"}],' ..
      '"item":{"id":"do_q' .. q .. '","maxscore":1,"type":"mcq","title":"Question ' .. q ..
      '","desc":"","params":[{"1":"{\\"text\\":\\"option\\"}"}]}},"context":{"cdata":[]}}'
  end
  return '{"request":{"userId":"' .. user .. '","contentId":"' .. M.content(1) .. '","collectionId":"' ..
    M.COLLECTION .. '","contextId":"' .. M.CONTEXT .. '","attemptId":"' .. attempt ..
    '","assessmentTs":' .. (ets + 11) .. ',"assessments":[' .. table.concat(events, ",") .. ']}}'
end

-- A one-endpoint phase whose every request is a new 10-question attempt (assess.lua and its floor).
function M.assess_phase(name, path)
  local k = 0
  M.single_endpoint(name, path, function(user, contents)
    k = k + 1
    local attempt = "att_" .. (M.opts.tag or "x") .. "_" .. tid .. "_" .. k
    return M.assess_body(user, attempt, 1700000000000 + k * 100)
  end)
end

-- lms-service's content state update as the mobile app sends it: 3 contents of the batch.
function M.state_body(user, contents)
  local first = math.random(contents)
  local items = {}
  for n = 0, 2 do
    local status = math.random(1, 2)
    items[n + 1] = '{"contentId":"' .. M.content((first + n - 1) % contents + 1) .. '","courseId":"' ..
      M.COLLECTION .. '","batchId":"' .. M.CONTEXT .. '","status":' .. status ..
      ',"progress":' .. (status == 2 and 100 or math.random(0, 99)) ..
      ',"lastAccessTime":"2026-01-' .. string.format("%02d", math.random(1, 28)) .. ' ' ..
      string.format("%02d:%02d:%02d:%03d", math.random(0, 23), math.random(0, 59), math.random(0, 59),
                    math.random(0, 999)) .. '+0000"}'
  end
  return '{"request":{"userId":"' .. user .. '","contents":[' .. table.concat(items, ",") .. ']}}'
end

-- A one-endpoint phase of lms-service state updates (state_update.lua and its floor).
function M.state_phase(name, method, path)
  M.single_endpoint(name, path, M.state_body, method)
end

M.headers = { ["Content-Type"] = "application/json" }

function M.post(path, body, method)
  return wrk.format(method or "POST", path, M.headers, body)
end

-- Optional per-endpoint status tally (BENCH_DIAG=1 in the environment): defines a global
-- response() hook. Off by default because the hook makes wrk hand every response to Lua,
-- which costs load-generator CPU; the floor must be measured with the same client cost.
M.diag = os.getenv("BENCH_DIAG") == "1"

function M.install_diag()
  if not M.diag then return end
  diag = {}
  response = function(status, headers, body)
    local id = string.match(body or "", '"id"%s*:%s*"([^"]+)"') or "?"
    local key = id .. " " .. status
    diag[key] = (diag[key] or 0) + 1
  end
end

-- Defines the wrk hooks (setup, init, request, done) of a one-endpoint phase: every request is
-- POST (or `method`) `path` with `make_body(user, contents)` for a random pre-seeded learner.
function M.single_endpoint(name, path, make_body, method)
  setup = M.setup
  M.install_diag()
  local learners, contents
  init = function(args)
    local o = M.parse(args)
    M.opts = o
    learners = M.num(o, "learners", 20000)
    contents = M.num(o, "contents", 5)
    M.seed_random(o, tid)
  end
  request = function()
    return M.post(path, make_body(M.user(math.random(0, learners - 1)), contents), method)
  end
  done = function(summary, latency, requests)
    M.report(name, summary, latency, nil, { "diag" })
  end
end

-- JSON output --------------------------------------------------------------------------

local function esc(s)
  return (string.gsub(tostring(s), '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end))
end

local function encode(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
    return string.format("%.6g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "string" then
    return '"' .. esc(v) .. '"'
  elseif t == "table" then
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = '"' .. esc(k) .. '":' .. encode(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end
M.encode = encode

-- main state: one line "BENCH_JSON {...}" for bench/run.py. Latencies are microseconds.
-- `counters` names per-thread numeric globals to sum; `tables` per-thread tables of counts.
function M.report(name, summary, latency, counters, tables)
  local out = {
    script = name,
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    rps = summary.requests / (summary.duration / 1e6),
    errors = {
      connect = summary.errors.connect, read = summary.errors.read,
      write = summary.errors.write, status = summary.errors.status,
      timeout = summary.errors.timeout,
    },
    latency_us = {
      min = latency.min, max = latency.max, mean = latency.mean, stdev = latency.stdev,
      p50 = latency:percentile(50), p90 = latency:percentile(90),
      p99 = latency:percentile(99), p999 = latency:percentile(99.9),
    },
    counters = {},
    tables = {},
  }
  for _, c in ipairs(counters or {}) do
    local sum = 0
    for _, t in ipairs(threads) do sum = sum + (tonumber(t:get(c)) or 0) end
    out.counters[c] = sum
  end
  for _, tn in ipairs(tables or {}) do
    local agg = {}
    for _, t in ipairs(threads) do
      local tbl = t:get(tn)
      if type(tbl) == "table" then
        for k, n in pairs(tbl) do agg[k] = (agg[k] or 0) + n end
      end
    end
    out.tables[tn] = agg
  end
  io.write("BENCH_JSON ", encode(out), "\n")
  io.flush()
end

return M
