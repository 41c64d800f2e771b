"""Work that runs outside the request: the task queue and what runs on it."""
