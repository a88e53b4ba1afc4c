-- A paced load for latency cases (benchmarks/harness/cases.py `paced`): each connection
-- waits PACE_MS between its requests, so the offered rate is about
-- connections * 1000 / (PACE_MS + response time): with wrk's 64 connections ~1,500
-- req/s, which FastAPI JSON serves at about a third of one core even with a shadow copy
-- of every request. At saturation p99 measures the queue, not the server: any extra
-- work (a shadow copy) shows up as queueing delay for every request behind it.
local PACE_MS = 40

function delay()
  return PACE_MS
end
