"""The sparse autoencoder: model and loss, training with resampling, metrics."""
