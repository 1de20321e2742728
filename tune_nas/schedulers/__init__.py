"""Our own stopping rules as Ray Tune schedulers, each a small policy fed a stream of results.

* :mod:`.curve_fit` — learning-curve extrapolation (Domhan et al. 2015, simplified).
"""

from tune_nas.schedulers.curve_fit import (
    CONTINUE,
    FAMILIES,
    STOP,
    CurveFamily,
    CurveFitPolicy,
    CurveFitScheduler,
    CurvePredictor,
    Prediction,
    default_bounds,
)

__all__ = ["CONTINUE", "FAMILIES", "STOP", "CurveFamily", "CurveFitPolicy", "CurveFitScheduler",
           "CurvePredictor", "Prediction",
           "default_bounds"]
