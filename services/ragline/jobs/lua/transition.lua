-- KEYS: job, events, embedded bitmap, indexed bitmap, open jobs, content
-- ARGV: target, now, terminal(0/1), ttl, n_from, from..., field, value, ...
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
local n = tonumber(ARGV[5])
local allowed = false
for i = 6, 5 + n do if ARGV[i] == state then allowed = true end end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'update_time', ARGV[2])
for i = 6 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local job_id = redis.call('HGET', KEYS[1], 'job_id')
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'finish_time', ARGV[2])
  for i = 1, 4 do if i ~= 2 then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[4])) end end
  redis.call('ZREM', KEYS[5], job_id)
  -- The document's bytes go with the work: at once for a job that completed or was cancelled;
  -- with the record for a failed one, whose requeued chunk dead letter still reads them.
  if ARGV[1] == 'failed' then
    redis.call('EXPIRE', KEYS[6], tonumber(ARGV[4]))
  else
    redis.call('DEL', KEYS[6])
  end
else
  -- Back in flight (a requeued failure): it must not expire under the work. Its content keeps
  -- the retention from now as a backstop, as a new job's does.
  redis.call('HDEL', KEYS[1], 'finish_time')
  for i = 1, 4 do if i ~= 2 then redis.call('PERSIST', KEYS[i]) end end
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[4]))
  redis.call('ZADD', KEYS[5], ARGV[2], job_id)
end
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
