"""logo: a PyTorch Lightning trainer for offline multi-agent RL built around LOGO
(local-to-global world model, arXiv 2601.07463)."""

__version__ = "0.1.0"
