"""Where an experiment persists: the Optuna study's database and remote trials directories."""
