-- Voids every version of a document given so far. Returns 0 when the document is unknown (or
-- already deleted with nothing live), 1 otherwise.
-- KEYS: doc   ARGV: none
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'live') or '0') == 0
   and tonumber(redis.call('HGET', KEYS[1], 'floor') or '0') == tonumber(seq) then
  return 0
end
redis.call('HSET', KEYS[1], 'live', 0, 'floor', seq)
return 1
