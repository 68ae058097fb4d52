"""Training and evaluation: config, builder, trainer, evaluator, checkpoint,
optim, losses, metrics, logger, distributed, cli.

Modules are imported where used (``from ppresvar.engine.trainer import
train``) so that importing one does not load the rest.
"""
