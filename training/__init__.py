"""The training command's parts, below ``cli.py`` and the population runner: the LightningCLI
(:mod:`training.lightning_cli`), the run options (:mod:`training.options`), how a run folder is named
(:mod:`training.naming`) and found without training (:mod:`training.target`), and what a run prints
(:mod:`training.messages`)."""
