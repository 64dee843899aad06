"""Readers for the data formats and public datasets the applications use, with their splits."""
