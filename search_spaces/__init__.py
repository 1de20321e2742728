"""The presets: space files to read, copy and edit (``python -m tune_nas.launch --space NAME``).

This folder ships inside the package as ``tune_nas.search_spaces`` (pyproject.toml maps it), so
an installed wheel finds its presets as an editable install does. The files are never imported
as modules of this package: :func:`tune_nas.config.space_file.load_space` loads each by path.
"""
