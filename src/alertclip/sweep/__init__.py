"""The Optuna sweep of stage 2's loss weights, temperature and lr: storage, study, objective, outputs, run (:mod:`.run`)."""
