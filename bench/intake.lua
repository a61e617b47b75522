-- wrk script for the intake benchmark: every request a different, correctly signed delivery.
-- Arguments: <file of "signature<TAB>body" lines> <number of threads>. Thread i sends lines
-- i, i+n, i+2n, ... and never repeats one (a repeat would be a duplicate, stored once).
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  bodies = {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      bodies[#bodies + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
    end
    i = i + 1
  end
  next_body = 0
end

function request()
  next_body = next_body + 1
  local item = bodies[next_body]
  if item == nil then
    item = bodies[1] -- exhausted: repeats are duplicates (the caller sizes the file to avoid this)
  end
  return wrk.format("POST", "/webhooks/xero",
    { ["Content-Type"] = "application/json", ["x-xero-signature"] = item[1] }, item[2])
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
