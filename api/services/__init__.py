"""Service functions: keyword-only, the session passed in, no commit inside (the caller's
unit of work commits once)."""
