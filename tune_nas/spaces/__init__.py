"""Genotypes: codecs, validity and canonical keys of architecture encodings."""
