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
``get_predictor(name)``, ``known_predictors()``, entry-point group ``hetero_infer.predictors``),
as for every plug-in family. A searched scheduler names its predictor (``predictor_kind``) and
gets it from the registry, made by the class's ``for_context(plan context)``.
"""

from hetero_infer.interference.predictors.base import LatencyTable, Predictor
from hetero_infer.interference.predictors.interference import (
                                                       InterferencePredictor,
                                                       load_latency_predictor,
)
from hetero_infer.interference.predictors.isolated import IsolatedPredictor
from hetero_infer.interference.predictors.registry import (
                                                       ENTRY_POINT_GROUP,
                                                       PREDICTORS,
                                                       get_predictor,
                                                       known_predictors,
                                                       register_predictor,
)
from hetero_infer.interference.predictors.twin import TwinPredictor

__all__ = ['ENTRY_POINT_GROUP', 'InterferencePredictor', 'IsolatedPredictor', 'LatencyTable',
           'PREDICTORS', 'Predictor', 'TwinPredictor', 'get_predictor', 'known_predictors',
           'load_latency_predictor', 'register_predictor']
