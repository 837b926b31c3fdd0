"""One module per pipeline stage, each with ``run(params, progress, [variant])``; ``alertclip.cli`` lists them.

Each stage's dvc.yaml deps include its own module and what it imports (``tests/test_layering.py`` checks), so
editing one entry point reruns only its stage. This file stays a docstring: every stage imports it.
"""
