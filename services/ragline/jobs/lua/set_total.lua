-- KEYS: job, events, open jobs   ARGV: total, now, job id
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
redis.call('HSET', KEYS[1], 'chunks_total', ARGV[1], 'update_time', ARGV[2])
-- XX: only a job that is open (a finished one stays out).
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[3])
if state == 'accepted' then redis.call('HSET', KEYS[1], 'state', 'active') end
redis.call('PUBLISH', KEYS[2], 'progress')
return 1
