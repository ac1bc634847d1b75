"""Build and check tools that are not part of the runtime library (the mini-Pile builder, the regression check)."""
