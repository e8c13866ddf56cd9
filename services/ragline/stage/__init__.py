"""What every pipeline stage shares: the queue consumer loop and the task envelope."""
