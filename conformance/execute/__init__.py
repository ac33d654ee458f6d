"""Stage 4: running a rule's scripts against an engine: the runtime checks, the executor, the runner, repros."""
