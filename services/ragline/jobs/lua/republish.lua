-- Publishes a stuck job's chunk task again, when its task was found missing (ragline.jobs.repair):
-- only if nothing has changed the job since it was found stuck, so that a job that moved on, or
-- that another gateway's sweep repaired a moment ago, is left alone. The job's last change is
-- touched in the same step, so it is not repaired again before another RAGLINE_STUCK_AFTER_S.
--
-- KEYS: job, events, open jobs, content, target (chunk stream or outbox hash), outbox leases
--       (or '')
-- ARGV: cutoff (the job must be unchanged since), now, most repairs, mode ('stream' or
--       'outbox'), job id, task body
-- Returns {1, repairs} republished (repairs counts this one), {0, why} left alone,
-- {-1, 0} its document is not kept (nothing to publish), {-2, repairs} its repairs are spent.
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'completed' or state == 'failed' or state == 'cancelled' then
  return {0, 'finished'}
end
local score = redis.call('ZSCORE', KEYS[3], ARGV[5])
if not score or tonumber(score) > tonumber(ARGV[1]) then return {0, 'changed'} end
if redis.call('HEXISTS', KEYS[4], 'body') == 0 or ARGV[6] == '' then return {-1, 0} end
-- A task still waiting in the outbox for its relay is late, not lost.
if ARGV[4] == 'outbox' and redis.call('HEXISTS', KEYS[5], ARGV[5]) == 1 then
  return {0, 'in the outbox'}
end
local repairs = tonumber(redis.call('HGET', KEYS[1], 'repairs') or '0')
if repairs >= tonumber(ARGV[3]) then return {-2, repairs} end
repairs = redis.call('HINCRBY', KEYS[1], 'repairs', 1)
redis.call('HSET', KEYS[1], 'update_time', ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[5])
if ARGV[4] == 'stream' then
  redis.call('XADD', KEYS[5], '*', 'b', ARGV[6])
else
  -- Leased until now: the next pass of any gateway's relay publishes it.
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
  redis.call('ZADD', KEYS[6], tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[5])
end
redis.call('PUBLISH', KEYS[2], 'repaired')
return {1, repairs}
