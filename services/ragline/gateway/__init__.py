"""The gateway: the public IngestService. Validates, records the job, queues, answers at once."""
