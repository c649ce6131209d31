-- POST /api/v1/loans/{id}/payments with the owner's token, spread over the
-- loans of a seed .tsv (loan id, token). Extra arguments after the common
-- ones (see common.lua): AMOUNT (default "0.01", small so loans are never
-- paid off), IDEMPOTENCY ("1": a fresh Idempotency-Key on every request)
-- and NONCE (part of every key).
local common = dofile((os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/common.lua")

local amount = "0.01"
local with_keys = false
local nonce = "0"
local sent = 0

local function build(fields)
  local path = "/api/v1/loans/" .. fields[1] .. "/payments"
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. fields[2],
  }
  local body = '{"amount":"' .. amount .. '"}'
  if not with_keys then
    return wrk.format("POST", path, headers, body)
  end
  return function()
    sent = sent + 1
    headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", nonce, thread_index, sent)
    return wrk.format("POST", path, headers, body)
  end
end

common.install(build)
local common_init = init
init = function(args)
  amount = args[4] or amount
  with_keys = args[5] == "1"
  -- Unique per wrk process too: a warm-up and its measured run (at least a
  -- second apart) never share a key, or the second would only replay.
  nonce = (args[6] or "run") .. "-" .. os.time()
  common_init(args)
end
