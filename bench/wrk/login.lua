-- POST /api/v1/auth/login, spread over the users of the seed's users.tsv
-- (email, password, ...). Arguments: see common.lua.
local common = dofile((os.getenv("BENCH_WRK_DIR") or "bench/wrk") .. "/common.lua")

common.install(function(fields)
  return wrk.format("POST", "/api/v1/auth/login", {
    ["Content-Type"] = "application/json",
  }, '{"email":"' .. fields[1] .. '","password":"' .. fields[2] .. '"}')
end)
