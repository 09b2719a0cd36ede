"""Config handling below the tools: loading (:mod:`.loading`) and the checks run before any step
(:mod:`.preflight`)."""
