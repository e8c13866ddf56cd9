-- KEYS: outbox hash, leases   ARGV: lease seconds, most entries
-- Takes up to N entries whose lease ran out, leasing each anew; returns {job id, body, ...}.
-- A lease left without its body (removed by hand) is dropped.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  local body = redis.call('HGET', KEYS[1], id)
  if body then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
    out[#out + 1] = id
    out[#out + 1] = body
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
