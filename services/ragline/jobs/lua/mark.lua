-- KEYS: job, bitmap, events, open jobs   ARGV: counter field, now, attempt, job id, index...
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, 0, ''} end
for i = 5, #ARGV do redis.call('SETBIT', KEYS[2], tonumber(ARGV[i]), 1) end
local count = redis.call('BITCOUNT', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], count, 'update_time', ARGV[2])
redis.call('ZADD', KEYS[4], 'XX', ARGV[2], ARGV[4])
if state == 'accepted' then
  state = 'active'
  redis.call('HSET', KEYS[1], 'state', state)
end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '1')
if tonumber(ARGV[3]) > attempts then redis.call('HSET', KEYS[1], 'attempts', ARGV[3]) end
redis.call('PUBLISH', KEYS[3], 'progress')
return {count, tonumber(redis.call('HGET', KEYS[1], 'chunks_total')), state}
