"""Run carenet's analysis on Apache Spark (``carenet analyze --engine spark``).

``pyspark`` is an optional dependency (``pip install carenet[spark]``) and is imported lazily:
``import carenet.spark`` works without it, and the first call that needs Spark raises
:class:`carenet.errors.InvalidInputError` saying how to install it.

- :mod:`carenet.spark.session`: a Spark session set up for carenet (local defaults that work on
  a laptop or CI; any master URL and ``k=v`` settings for a cluster).
- :mod:`carenet.spark.load`: reading, validating and aggregating interaction logs in Spark SQL,
  with the local loader's column mapping, time parsing, channel weights, decay and reject reasons.
- :mod:`carenet.spark.distributed`: degree/strength, PageRank, label propagation and connected
  components as DataFrame iterations, for tie tables too large for the driver.
- :mod:`carenet.spark.engine`: the dispatcher: collect the ties and run the local steps when they
  fit the driver (``collect_max_ties``), the distributed steps otherwise.
"""
