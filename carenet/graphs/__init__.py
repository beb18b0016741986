"""Domain-free graph machinery: log loading, graph building, the CSR model, kernels.

This layer imports nothing from the rest of carenet (checked by import-linter).
"""
