"""monosemantic: a replication of Bricken et al. (2023), "Towards Monosemanticity"."""
