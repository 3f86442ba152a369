"""Training: FnArgs, distribution strategies, cluster configuration, hyperparameters and the multi-node launcher."""
