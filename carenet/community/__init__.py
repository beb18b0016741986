"""The customer-community domain: communities and roles, influence and exposure, care.

Built on :mod:`carenet.graphs`; imports no web, storage or visualisation code.
"""
