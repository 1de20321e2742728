"""Read-only analysis of an experiment: its typed record, fidelity, rank correlations, plots."""
