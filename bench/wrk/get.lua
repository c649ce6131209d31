-- GET /api/v1/loans/{id} with the owner's token, spread over the loans of a
-- seed .tsv (loan id, token). Arguments: see common.lua.
local common = dofile((os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/common.lua")

common.install(function(fields)
  return wrk.format("GET", "/api/v1/loans/" .. fields[1], {
    ["Authorization"] = "Bearer " .. fields[2],
  })
end)
