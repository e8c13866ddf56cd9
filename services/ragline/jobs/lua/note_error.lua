-- Records a retryable error on a job that goes on, only if the job still exists: a plain HSET on
-- a job that expired meanwhile would leave a partial record (no id, no state) behind.
-- KEYS: job, events, open jobs   ARGV: error, stage, attempts, now, job id
-- Returns 1, or -1 when the job does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'last_error', ARGV[1], 'last_error_stage', ARGV[2],
  'attempts', ARGV[3], 'update_time', ARGV[4])
-- XX: only a job that is open (a finished one stays out).
redis.call('ZADD', KEYS[3], 'XX', ARGV[4], ARGV[5])
redis.call('PUBLISH', KEYS[2], 'error')
return 1
