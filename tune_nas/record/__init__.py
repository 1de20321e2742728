"""The driver's record of a search: TensorBoard runs, curves.csv, trials.json and the console."""
