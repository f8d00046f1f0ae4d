-- wrk script: a realistic mix over many learners.
--   update 70 %  random pre-seeded (learner, content), progress 0-100, position, timespent 5
--   start  10 %  a NEW learner (id range "bench_n<tag>_<thread>_<k>", never used before), a
--                random content: creates a row and a cache scope
--   end    10 %  random pre-seeded (learner, content)
--   read   10 %  all contents of the collection for a random pre-seeded learner
-- Percentages are arguments (pct_update, pct_start, pct_end; read is the rest). `tag` must be
-- unique per wrk run so that starts always create rows; bench/run.py passes one.
--   wrk -t1 -c64 -d15s -s bench/mix.lua http://127.0.0.1:8080 -- learners=20000 contents=5 seed=1 tag=a1
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")
setup = c.setup
c.install_diag()

local learners, contents, ids, tag, p_update, p_start, p_end
local new_k = 0
n_update, n_start, n_end, n_read = 0, 0, 0, 0

function init(args)
  local o = c.parse(args)
  learners = c.num(o, "learners", 20000)
  contents = c.num(o, "contents", 5)
  ids = c.read_ids(contents)
  tag = o.tag or tostring(os.time())
  p_update = c.num(o, "pct_update", 70)
  p_start = p_update + c.num(o, "pct_start", 10)
  p_end = p_start + c.num(o, "pct_end", 10)
  c.seed_random(o, tid)
end

function request()
  local r = math.random() * 100
  if r < p_update then
    n_update = n_update + 1
    local user = c.user(math.random(0, learners - 1))
    return c.post("/v1/view/update", c.random_update_body(user, contents))
  elseif r < p_start then
    n_start = n_start + 1
    new_k = new_k + 1
    local user = "bench_n" .. tag .. "_" .. tid .. "_" .. new_k
    return c.post("/v1/view/start", c.start_body(user, c.content(math.random(contents))))
  elseif r < p_end then
    n_end = n_end + 1
    local user = c.user(math.random(0, learners - 1))
    return c.post("/v1/view/end", c.end_body(user, c.content(math.random(contents))))
  else
    n_read = n_read + 1
    return c.post("/v1/view/read", c.read_body(c.user(math.random(0, learners - 1)), ids))
  end
end

function done(summary, latency, requests)
  -- n_* count requests generated (sent or about to be sent), not responses.
  c.report("mix", summary, latency, { "n_update", "n_start", "n_end", "n_read" }, { "diag" })
end
