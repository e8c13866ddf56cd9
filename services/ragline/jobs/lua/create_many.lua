-- Makes a job for each document, in order, and hands each new job's chunk task on, all in one
-- call, so that no job is ever recorded without its task. Per job it answers with what the caller
-- needs to build the job without reading it back:
--   {1, version}   a job made now (or by an earlier run of this very call, which a client retry
--                  after a broken connection replays: it is reported as made, not as a request
--                  seen before, so the caller still sends its task on; the task was written by
--                  that earlier run and is not written twice)
--   {0, hash}      a request id seen before: that job's record as HGETALL returns it
-- A request id whose job record is gone (removed by hand, or evicted) makes a new job rather than
-- failing the whole call. The earlier job's key is only known inside the script (ARGV[3] is the
-- job key prefix), which is fine on a single Redis (not on Redis Cluster).
--
-- The task body comes without its document version (the version is given here); the script
-- appends it as protobuf (a message followed by another parses as the two merged; see
-- ragline.stage.envelope.with_document_version, which does the same in Python). The task refers
-- to the document's bytes rather than carrying them: the script keeps them in the job's content
-- hash (field body), with the finished task (field task) to publish again should the broker lose
-- it. So the bytes are stored once, beside the job, and a queue entry stays small.
--
-- KEYS[1]     the task target: the chunk stream (mode 'stream'), the outbox hash of task bodies
--             by job id (mode 'outbox'), or '' (mode '': jobs only)
-- KEYS[2]     mode 'outbox': the outbox's sorted set of lease expiries by job id; else ''
-- KEYS[3]     the open jobs: a sorted set of unfinished job ids by their last change
-- KEYS[4..]   per job: job, request (or ''), doc, content
-- ARGV[1..6]  now, request ttl, job key prefix, mode, lease seconds (mode 'outbox': the writer
--             holds its new entries this long before any relay may take them), content ttl (the
--             jobs' retention: a backstop, as the content is deleted when its job ends)
-- ARGV[7..9]  the protobuf keys of TaskEnvelope.chunk, ChunkTask.document and
--             DocumentRef.document_version
-- ARGV[10..]  per job: job_id, document_id, request_id, tenant, task body (without its
--             version), the document's bytes
local now, ttl, prefix, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local lease_until = 0
if mode == 'outbox' then
  -- The server's clock, so that every gateway's relay measures leases alike.
  local t = redis.call('TIME')
  lease_until = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[5])
end
local function varint(n)
  local out = ''
  while n >= 128 do
    out = out .. string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  return out .. string.char(n)
end
local function with_version(body, version)
  local ref = ARGV[9] .. varint(version)
  local task = ARGV[8] .. varint(#ref) .. ref
  return body .. ARGV[7] .. varint(#task) .. task
end
local content_ttl = tonumber(ARGV[6])
local out = {}
for j = 0, (#KEYS - 3) / 4 - 1 do
  local job, request, doc, content = KEYS[4 * j + 4], KEYS[4 * j + 5], KEYS[4 * j + 6],
    KEYS[4 * j + 7]
  local job_id, document_id = ARGV[6 * j + 10], ARGV[6 * j + 11]
  local request_id, tenant = ARGV[6 * j + 12], ARGV[6 * j + 13]
  local body, bytes = ARGV[6 * j + 14], ARGV[6 * j + 15]
  local reply = nil
  local mine = redis.call('HGET', job, 'document_version')
  if mine then reply = {1, tonumber(mine)} end
  if not reply and request ~= '' then
    local existing = redis.call('GET', request)
    if existing then
      local record = redis.call('HGETALL', prefix .. existing)
      if #record > 0 then reply = {0, record} end
    end
  end
  if not reply then
    local version = redis.call('HINCRBY', doc, 'seq', 1)
    -- The task before the job: a script that errs midway (Redis does not undo a script's
    -- earlier writes) may leave a task without its job (like a task of an expired job) or a
    -- skipped version, never a job without its task.
    if mode ~= '' then
      local task = with_version(body, version)
      -- The content before the task, for the same reason.
      redis.call('HSET', content, 'body', bytes, 'task', task)
      redis.call('EXPIRE', content, content_ttl)
      if mode == 'stream' then
        redis.call('XADD', KEYS[1], '*', 'b', task)
      else
        redis.call('HSET', KEYS[1], job_id, task)
        redis.call('ZADD', KEYS[2], lease_until, job_id)
      end
    end
    redis.call('HSET', job, 'job_id', job_id, 'document_id', document_id,
      'document_version', version, 'state', 'accepted', 'chunks_total', 0,
      'chunks_embedded', 0, 'chunks_indexed', 0, 'attempts', 1, 'request_id', request_id,
      'create_time', now, 'update_time', now, 'tenant', tenant)
    redis.call('ZADD', KEYS[3], now, job_id)
    if request ~= '' then redis.call('SET', request, job_id, 'EX', ttl) end
    reply = {1, version}
  end
  out[j + 1] = reply
end
return out
