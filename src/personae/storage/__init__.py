"""Files: where they live (`files.py`: the `Storage` interface, the local backend; `s3.py`:
an S3-compatible bucket), their signed URLs (`signing.py`), and the cleaning every image
goes through before it is stored (`processing.py`). Below every domain that keeps files:
characters' avatars, images posted in conversations, generated images."""
