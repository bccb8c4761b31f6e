"""What training leaves behind and how it comes back: checkpoint folders, the networks a config
describes (:mod:`~videofocus.artifacts.factory`), learned policies in checkpoints and one
:func:`~videofocus.artifacts.load.load_model` for every checkpoint of every stage.

Nothing here imports the training stack: loading a model for inference needs only this layer,
``models`` and ``policy``.
"""
