"""What an experiment is: the space file, the experiment settings, the training settings and
user plugins. Torch-free and Ray-free."""
