"""HTTP plumbing shared by both dialects: dependencies, error handlers, middleware."""
