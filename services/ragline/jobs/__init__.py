"""Jobs: the state machine (pure) and the Redis job store that records it."""
