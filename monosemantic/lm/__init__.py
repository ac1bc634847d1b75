"""The one-layer transformer, its training, and sampling its MLP activations."""
