"""Hard negatives for Alert-CLIP: lexicon, rule inverter, one validator, optional LLM backend, table builder."""
