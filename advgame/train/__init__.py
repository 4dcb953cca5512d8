"""Training: the run loop, optimisers, checkpoints and run logging."""
