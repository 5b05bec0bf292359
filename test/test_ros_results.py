"""The result document: the per-application encoder writes exactly what the schema says."""

import json
import math

import pytest

from hetero_infer.ros import results

CASES = [
    dict(stamp=(12, 345), frame_id='cam0', processor='gpu', request_id=7, policy_version=2,
         queue_ms=0.123456, execute_ms=3.5, total_ms=4.25, slo_ms=10.0,
         top_k=[('tabby, cat', 0.5), ('say "hi"\\n', 1e-7), ('caf\u00e9 \u2603', 0.25)]),
    dict(stamp=(0, 0), frame_id='', processor=None, request_id=8, policy_version=3,
         queue_ms=0.0, execute_ms=0.0, total_ms=0.2, slo_ms=5.0, outcome='dropped',
         drop_reason='bad_input', detail='bad_step: Image.step 3 < 192 "row"'),
    dict(stamp=(5, 6), frame_id='mic\t1', processor='dla1', request_id=9, policy_version=1,
         queue_ms=1.0, execute_ms=float('nan'), total_ms=30.0, slo_ms=20.0,
         transcript='turn left'),
    dict(stamp=(5, 6), frame_id='x', processor='cpu0', request_id=10, policy_version=1,
         queue_ms=1e-9, execute_ms=float('inf'), total_ms=123456.789012, slo_ms=1e6,
         top_k=[]),
]


@pytest.mark.parametrize('case', CASES)
def test_encoder_writes_the_schema_document(case):
    enc = results.ResultEncoder('cam"front', 'mobilenet_v2')
    text = enc.encode(**case)
    text_again = enc.encode(**case)  # cached labels and processors give the same text
    expected = results.result_document(application='cam"front', model='mobilenet_v2', **case)
    assert text == text_again == results.encode(expected)
    doc = results.decode(text)
    assert doc['slo_met'] == (case.get('outcome', 'result') == 'result'
                              and case['total_ms'] <= case['slo_ms'])
    for key in ('queue_ms', 'total_ms'):
        assert math.isclose(doc[key], round(case[key], 4))
    json.loads(text)  # standard JSON but for NaN / Infinity, as json.dumps writes them
