"""Images: storage of files, checking and re-encoding of uploads (generation comes later)."""
