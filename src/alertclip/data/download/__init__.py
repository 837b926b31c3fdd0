"""Dataset download for the pipeline's ``download`` stage: a manifest's files, verified, into ``data/raw/``.

One idea per module; imports run one way (each module imports only those listed before it):
``report`` (what a call did) <- ``errors`` <- ``cache`` (state file, lock) <- ``transfer`` (HTTP / local copy)
<- ``manifest`` <- ``archives`` <- ``placing`` <- ``fetch`` and ``local`` (the two entry points).
"""
