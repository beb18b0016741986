"""Evaluation of carenet's scores against what happened next.

:mod:`carenet.evaluation.backtest` runs the out-of-time backtest (analyse before a cutoff,
label who churned after it, compare scores and baselines); :mod:`carenet.evaluation.stats`
holds its statistics (labels, AUC with DeLong intervals, lift, captured at K) as pure
functions over numpy arrays.
"""
