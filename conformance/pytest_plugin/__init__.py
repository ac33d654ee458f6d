"""The pytest entry point: options, collection of one test per (rule, dtype), the results collector."""
