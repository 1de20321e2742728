"""Data: the sources a trial trains on (registry of data sets, splits, fidelity reductions) and
the batches that feed a trial from the device."""
