-- wrk script for the tokengate load harness.
-- Arguments: <token file> <once|cycle|none|label> <threads> [method] [body file] [content type] [label prefix]
-- In "once" mode each thread takes every n-th line of the token file, so
-- threads never send the same token. "once": every token is sent once (first-sight and
-- unknown rows); the thread stops when its share is used up, and the
-- harness reports any overshoot. "cycle": the pool repeats (cached rows,
-- wrong-checksum flood). "none": no Authorization header.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  mode = args[2]
  local n = tonumber(args[3])
  method = args[4] or "GET"
  body = nil
  if args[5] and args[5] ~= "" then
    local f = io.open(args[5], "r")
    body = f:read("*a")
    f:close()
  end
  tokens = {}
  if mode ~= "none" then
    local i = 0
    for line in io.lines(args[1]) do
      -- "once" rows split the pool between threads; the others share it.
      if mode ~= "once" or i % n == id then tokens[#tokens + 1] = line end
      i = i + 1
    end
  end
  prefix = args[7] or "t"
  headers = {}
  if args[6] and args[6] ~= "" then headers["Content-Type"] = args[6] end
  idx = 0
  sent = 0
  answered = 0
end

function request()
  if mode == "none" then
    return wrk.format(method, nil, headers, body)
  end
  idx = idx + 1
  if idx > #tokens then idx = 1 end
  headers["Authorization"] = tokens[idx]
  if mode == "label" then
    sent = sent + 1
    body = string.format('{"label":"%s%d-%d"}', prefix, id, sent)
  end
  return wrk.format(method, nil, headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if mode == "once" and answered >= #tokens then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
