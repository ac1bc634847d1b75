"""The sparse autoencoders: the architectures (architectures/), training with resampling, metrics."""
