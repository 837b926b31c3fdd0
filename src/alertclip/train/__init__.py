"""Training utilities: a resumable, deterministic loop (:mod:`.loop`), LR schedules (:mod:`.schedule`) and the
several-process helpers (:mod:`.distributed`)."""
