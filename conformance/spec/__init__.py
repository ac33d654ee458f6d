"""Stage 1: the rules as data: loading and validating specs/*.toml, the spec language, literals."""
