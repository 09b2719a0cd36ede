"""Config handling below the tools: loading (:mod:`.loading`), the checks run before any step
(:mod:`.preflight`), where a model reads its backbone's maps (:mod:`.feature_maps`) and the backbone swap
that rewrites them (:mod:`.swap`)."""
