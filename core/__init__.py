"""What every application shares: HSIC, models, losses, training, estimators, io, plots, cli."""
