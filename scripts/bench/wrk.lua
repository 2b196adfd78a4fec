-- Requests spread over random callers and, for each, a random user inside its data room
-- (see generate.sql), so every answer should be 200. Non-200 answers are counted by status.
-- Parameters come from the file named by BENCH_PARAMS: users = N, tokens = {20 tokens}.
local params = dofile(os.getenv("BENCH_PARAMS"))
local users, tokens = params.users, params.tokens
local fixed_user = params.fixed_user
local blocks = math.max(1, math.floor(users / 640))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  statuses = {}
end

local function target(k)
  local client, leaf
  if k <= 5 then
    client, leaf = math.random(0, 9), math.random(0, 63)
  elseif k <= 10 then
    client, leaf = k - 6, math.random(0, 63)
  elseif k <= 15 then
    client, leaf = k - 11, 4 * (k - 11) + math.random(0, 3)
  else
    client, leaf = k - 11, 16 * ((k - 16) % 4) + math.random(0, 15)
  end
  local n = 10 * (64 * math.random(0, blocks - 1) + leaf) + client
  return client, n
end

function request()
  local k = math.random(1, 20)
  local client, n = target(k)
  if fixed_user then client, n = fixed_user.client, fixed_user.n end
  local path = "/nevisidm/api/auth/v1/client-" .. client .. "/users/user-" .. n .. "/otp/challenge"
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. tokens[k], ["Content-Length"] = "0"})
end

function response(status, headers, body)
  if status ~= 200 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local non200 = 0
  local detail = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do
      non200 = non200 + count
      detail[#detail + 1] = status .. "x" .. count
    end
  end
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non200=%d socket_errors=%d statuses=%s\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, non200,
    e.connect + e.read + e.write + e.timeout, table.concat(detail, ",")))
end
