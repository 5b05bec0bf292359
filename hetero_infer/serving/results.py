"""Result documents: one versioned JSON document per request (the node publishes it on
``std_msgs/String``).

Schema ``hetero_infer.result/1`` (one object per request, on the application's result topic)::

    {
      "schema": "hetero_infer.result/1",
      "outcome": "result" | "dropped",
      "drop_reason": null | "queue_full" | "rejected" | "no_processor" | "processor_failed"
                     | "bad_input" | "shutdown" | "slo_unreachable" | "shed",
      "stamp": {"sec": int, "nanosec": int},   # header.stamp of the input message
      "frame_id": str,                          # header.frame_id of the input message
      "application": str, "model": str,
      "processor": str | null,                  # gpu, dla0, dla1, cpu0, ...
      "request_id": int,                        # per node, increasing in arrival order
      "policy_version": int,                    # the plan that routed the request
      "queue_ms": float,                        # received -> processor started it
      "execute_ms": float,                      # processor time (emulated time on 'emulated')
      "total_ms": float,                        # received -> result published
      "slo_ms": float, "slo_met": bool,         # total_ms <= slo_ms (dropped: false)
      "top_k": [{"label": str, "score": float}, ...],   # classifiers
      "detections": [{"class_id": int, "score": float,  # detectors, best score first, after
                      "bbox": [cx, cy, w, h]}, ...],    # NMS; box centre and size in the
                                                        # input image's pixels
      "transcript": str                         # speech recognisers (CTC greedy decoding)
    }

Backwards-compatible additions keep the ``/1``; a field that changes meaning bumps it.
Bad inputs are published as ``dropped`` with ``drop_reason`` ``bad_input`` and ``detail`` naming
the field (unknown encoding, wrong step, ...), so a subscriber can account for every message.
"""

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

RESULT_SCHEMA = 'hetero_infer.result/1'

def result_document(*, stamp: Tuple[int, int], frame_id: str, application: str, model: str,
                    processor: Optional[str], request_id: int, policy_version: int,
                    queue_ms: float, execute_ms: float, total_ms: float, slo_ms: float,
                    outcome: str = 'result', drop_reason: Optional[str] = None,
                    detail: str = '', top_k: Optional[List[Tuple[str, float]]] = None,
                    transcript: Optional[str] = None,
                    detections: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """The schema's dict for one request (see the module docstring)."""
    doc: Dict[str, Any] = {
        'schema': RESULT_SCHEMA,
        'outcome': outcome,
        'drop_reason': drop_reason,
        'stamp': {'sec': int(stamp[0]), 'nanosec': int(stamp[1])},
        'frame_id': frame_id,
        'application': application,
        'model': model,
        'processor': processor,
        'request_id': int(request_id),
        'policy_version': int(policy_version),
        'queue_ms': round(float(queue_ms), 4),
        'execute_ms': round(float(execute_ms), 4),
        'total_ms': round(float(total_ms), 4),
        'slo_ms': round(float(slo_ms), 4),
        'slo_met': bool(outcome == 'result' and total_ms <= slo_ms),
    }
    if detail:
        doc['detail'] = detail
    if top_k is not None:
        doc['top_k'] = [{'label': label, 'score': round(score, 6)} for label, score in top_k]
    if transcript is not None:
        doc['transcript'] = transcript
    if detections is not None:
        doc['detections'] = [{'class_id': int(d.class_id), 'score': round(float(d.score), 6),
                              'bbox': [round(float(v), 2) for v in d.bbox]}
                             for d in detections]
    return doc


def encode(doc: Dict[str, Any]) -> str:
    return json.dumps(doc, separators=(',', ':'))


def decode(text: str) -> Dict[str, Any]:
    """Parse a result message; raises ``ValueError`` on another schema."""
    doc = json.loads(text)
    schema = doc.get('schema', '')
    if not str(schema).startswith('hetero_infer.result/'):
        raise ValueError('not a hetero_infer result: schema %r' % (schema,))
    return doc
