"""Model-level latency predictors for the planner's simulator.

A predictor answers one question: how long does one inference of ``model`` take on ``proc`` while
the other processors run ``corunners`` (``{proc_id: ModelSpec}``, idle processors absent)?

* :class:`IsolatedPredictor`: the isolated latency, ignoring co-runners (the no-interference
  baseline; what a planner without an interference model believes).
* :class:`InterferencePredictor`: the interference model of
``hetero_infer.interference.slowdown_model``
  (learned from profiled random layers, never from the twin's formulas).
* :class:`TwinPredictor`: the ground truth, measured on the digital twin by co-running the models
  back to back (``Twin.corun``); the oracle's predictor.

Every predictor has the same call, ``predictor.latency_ms(model, proc, corunners)``, and
:class:`LatencyTable` memoises it per ``(application, processor, what runs elsewhere)`` so that
the simulator pays a dictionary lookup per request.

One file per predictor, one base (:mod:`.base`), one registry (:mod:`.registry`:
``predictor_class(name)``, ``known_predictors()``), as for goals and schedulers.
"""

from hetero_infer.interference.predictors.base import LatencyTable, Predictor
from hetero_infer.interference.predictors.interference import (
                                                       InterferencePredictor,
                                                       load_latency_predictor,
)
from hetero_infer.interference.predictors.isolated import IsolatedPredictor
from hetero_infer.interference.predictors.registry import (
                                                       known_predictors,
                                                       predictor_class,
                                                       register_predictor,
)
from hetero_infer.interference.predictors.twin import TwinPredictor

__all__ = ['InterferencePredictor', 'IsolatedPredictor', 'LatencyTable', 'Predictor',
           'TwinPredictor', 'known_predictors', 'load_latency_predictor', 'predictor_class',
           'register_predictor']
