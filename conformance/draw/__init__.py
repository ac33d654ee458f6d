"""Stage 2: what a check draws: cases and shape pools, random programs, the stateful model."""
