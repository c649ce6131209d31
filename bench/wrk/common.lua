-- Shared by the bench scripts (loaded with dofile from each): reading the
-- seed's .tsv files, spreading requests over them, counting every status, and
-- the one summary line bench/run.sh parses.
--
-- Arguments after wrk's `--`: THREADS FILE [LIMIT] [script-specific...]
--   THREADS  the -t given to wrk (each thread takes every THREADS-th line)
--   FILE     a seed .tsv (loans or users)
--   LIMIT    when > 0, each line gets at most LIMIT answered requests, then
--            the thread stops (a count-bounded run; wrk's -d still caps it)
local M = {}

local threads = {}

-- In the main state: number the threads so each takes its own slice.
function M.setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

-- Splits each line of `path` on tabs.
function M.read_tsv(path)
  local rows = {}
  local file = assert(io.open(path, "r"), "cannot open " .. path)
  for line in file:lines() do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do
      table.insert(fields, field)
    end
    if #fields > 0 then
      table.insert(rows, fields)
    end
  end
  file:close()
  assert(#rows > 0, path .. " has no rows")
  return rows
end

-- In each thread: `build(fields)` turns a row into a request string (or a
-- function returning one, for requests that differ each time). Returns the
-- rest of the arguments for the caller.
function M.init(args, build)
  local thread_count = tonumber(args[1])
  local rows = M.read_tsv(args[2])
  limit_per_row = tonumber(args[3] or "0")
  requests = {}
  if #rows >= thread_count then
    for i = thread_index + 1, #rows, thread_count do
      table.insert(requests, build(rows[i]))
    end
    budget = limit_per_row * #requests
  else
    -- Fewer rows than threads (one hot loan): every thread takes every row
    -- and an even share of the rows' limit.
    for i = 1, #rows do
      table.insert(requests, build(rows[i]))
    end
    budget = math.ceil(limit_per_row * #rows / thread_count)
  end
  next_request = 0
  answered = 0
  statuses = {}
  local rest = {}
  for i = 4, #args do
    table.insert(rest, args[i])
  end
  return rest
end

-- Round robin over this thread's slice.
function M.request()
  next_request = next_request % #requests + 1
  local request = requests[next_request]
  if type(request) == "function" then
    return request()
  end
  return request
end

function M.response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  answered = answered + 1
  if budget > 0 and answered >= budget then
    wrk.thread:stop()
  end
end

-- One line: BENCH key=value ..., latencies in milliseconds.
function M.done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local ok, not_ok, listed = 0, 0, {}
  for status, count in pairs(counts) do
    if status >= 200 and status < 300 then
      ok = ok + count
    else
      not_ok = not_ok + count
    end
    table.insert(listed, status .. ":" .. count)
  end
  table.sort(listed)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f ok_rps=%.1f non2xx=%d statuses=%s "
      .. "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f "
      .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, seconds, summary.requests / seconds, ok / seconds, not_ok,
    (#listed > 0) and table.concat(listed, ",") or "none",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    errors.connect, errors.read, errors.write, errors.timeout))
end

-- Installs the shared callbacks as wrk's globals; `build` as in M.init.
function M.install(build)
  setup = M.setup
  init = function(args) M.init(args, build) end
  request = M.request
  response = M.response
  done = M.done
end

return M
