"""The Optuna sweep of ``runs.full``'s loss weights, temperature and lr: storage, study, objective, outputs, run
(:mod:`.run`)."""
