"""Alert-CLIP tuning (stages 1 and 2): settings, data, batches, validation, checkpoints and the run (:mod:`.run`)."""
