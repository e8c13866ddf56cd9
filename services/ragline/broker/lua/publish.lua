-- Appends every body in one call: a pipeline of XADDs costs redis-py a command each, and the
-- gateway publishes a few documents per commit, so the per-command cost was most of it. One script
-- is also all or nothing, where a pipeline broken midway left part of the messages queued.
--
-- KEYS: the stream   ARGV: the message bodies, in order. Returns how many it appended.
for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'b', ARGV[i]) end
return #ARGV
