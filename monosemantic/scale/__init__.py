"""Paper scale: the compute/storage plan and multi-process (torchrun) training."""
