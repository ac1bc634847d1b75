"""monosemantic: a replication of Bricken et al. (2023), "Towards Monosemanticity"."""

__version__ = "0.1.0"
