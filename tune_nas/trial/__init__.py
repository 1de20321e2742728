"""What runs in a worker, Ray-free: the fit, the Lightning module, a model's cost, GPU packing."""
