"""Background folder watching: observer, readiness of files, batches, durable queue."""
