"""LightGBM propensity models: churn and coupon response (issue 4).

``churn`` and ``coupon`` build point-in-time training sets, ``gbdt`` fits one LightGBM
booster (locally or on a Dask cluster), ``calibrate`` maps raw scores to probabilities,
``evaluate`` and ``baselines`` measure it against simple rivals, ``run`` tracks, registers
and gates a version, ``score`` writes batch scores with the point-in-time version.
"""
