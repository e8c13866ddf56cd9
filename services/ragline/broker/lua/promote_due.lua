-- Moves due retries from the delayed set onto the stream, atomically, so a crash between the two
-- steps can neither lose nor duplicate a retry.
--
-- KEYS: the queue's delayed set (bodies by due time), its stream
-- ARGV: now (epoch seconds), most retries to move
-- Returns how many it moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, body in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'b', body)
  redis.call('ZREM', KEYS[1], body)
end
return #due
