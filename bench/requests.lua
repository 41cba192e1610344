-- wrk script of the benchmark harness (bench/harness.py writes the request files).
-- Usage: wrk -t T -c C -d D -s bench/requests.lua URL -- FILE METHOD HEADER_NAME T
-- FILE has one request per line: path <TAB> header value <TAB> body. Thread k of T sends
-- lines k, k+T, k+2T, ... so no two threads send the same line; a thread that runs out
-- starts again from its first line and counts a wrap (the harness reports it).
-- done() prints one line "BENCH_RESULT {json}" that bench/helpers.py parses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file, method, header_name, nthreads = args[1], args[2], args[3], tonumber(args[4])
  wrk.method = method
  lines = {}
  wrapped = 0
  local all = {}
  for line in io.lines(file) do
    table.insert(all, line)
  end
  for i = 1, #all do
    if (i - 1) % nthreads == id then
      local path, value, body = all[i]:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      table.insert(lines, { path, value, body })
    end
  end
  header = header_name
  position = 0
end

function request()
  position = position + 1
  if position > #lines then
    position = 1
    wrapped = wrapped + 1
  end
  local entry = lines[position]
  local headers = { [header] = entry[2] }
  local body = nil
  if entry[3] ~= "" then
    headers["Content-Type"] = "application/json"
    body = entry[3]
  end
  return wrk.format(nil, entry[1], headers, body)
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "wrapped": %d, "errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, wraps, e.connect, e.read, e.write, e.status, e.timeout))
end
