"""The paper's figures (matplotlib, Agg)."""
