"""Training: the shared supervised loop, its stages, the RL policy stage
(:mod:`videofocus.train.rl`), the pipeline that runs them in order with resume, and the variants
of a run that comparisons train (:mod:`videofocus.train.variants`)."""
