-- KEYS: doc, job, events, embedded bitmap, indexed bitmap, open jobs, content
-- ARGV: version, now, ttl, job id, then the states a job may complete from (ALLOWED_FROM)
-- Makes the job's version live (unless a newer one is, or the document was deleted) and ends the
-- job, in one step: a job cancelled before this never goes live; one completed here can no
-- longer be cancelled. The job's document bytes (content) are deleted when it ends, and by any
-- call that finds it cancelled. Returns {live, floor, job state, seq}.
local v = tonumber(ARGV[1])
local live = tonumber(redis.call('HGET', KEYS[1], 'live') or '0')
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return {-1, 0, '', 0} end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if state == 'cancelled' then
  redis.call('DEL', KEYS[7])
  return {live, floor, state, seq}
end
if v > floor and v > live then
  live = v
  redis.call('HSET', KEYS[1], 'live', live)
end
local may_end = false
for i = 5, #ARGV do if ARGV[i] == state then may_end = true end end
if may_end then
  if v <= floor then
    state = 'cancelled'
    redis.call('HSET', KEYS[2], 'last_error', 'the document was deleted while it was being ingested')
  else
    state = 'completed'
  end
  redis.call('HSET', KEYS[2], 'state', state, 'update_time', ARGV[2], 'finish_time', ARGV[2])
  for _, k in ipairs({KEYS[2], KEYS[4], KEYS[5]}) do redis.call('EXPIRE', k, tonumber(ARGV[3])) end
  redis.call('ZREM', KEYS[6], ARGV[4])
  redis.call('DEL', KEYS[7])
  redis.call('PUBLISH', KEYS[3], state)
end
return {live, floor, state, seq}
