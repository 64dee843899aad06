"""One sub-package per application: ecg, materials, plants."""
