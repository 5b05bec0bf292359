"""Model outputs -> what a result reports: top-k labels of a classifier, CTC transcripts.

The label sets the zoo's models use by default are here too.
"""

import math
from typing import Optional, Sequence

import numpy as np

#: Google Speech Commands v2 (35 words), the label set of the keyword-spotting models.
SPEECH_COMMANDS = (
    'backward', 'bed', 'bird', 'cat', 'dog', 'down', 'eight', 'five', 'follow', 'forward',
    'four', 'go', 'happy', 'house', 'learn', 'left', 'marvin', 'nine', 'no', 'off', 'on', 'one',
    'right', 'seven', 'sheila', 'six', 'stop', 'three', 'tree', 'two', 'up', 'visual', 'wow',
    'yes', 'zero')

def top_k(scores: np.ndarray, k: int, labels: Optional[Sequence[str]] = None):
    """Top-k ``[(label, score)]`` of a score vector (softmax applied if they are logits)."""
    s = scores.reshape(-1) if isinstance(scores, np.ndarray) else np.asarray(scores).reshape(-1)
    if s.dtype != np.float32:
        s = s.astype(np.float32)
    n = s.size
    if n == 0:
        return []
    k = max(1, min(int(k), n))
    idx = np.argpartition(s, n - k)[n - k:] if k < n else np.arange(n)
    idx = idx[np.argsort(-s[idx], kind='stable')].tolist()
    top = [float(s[i]) for i in idx]
    total = float(s.sum(dtype=np.float64))
    if abs(total - 1.0) > 1e-3 or float(s.min()) < 0.0:  # logits: softmax, for the k only
        hi = top[0]
        denom = float(np.exp(s - np.float32(hi)).sum(dtype=np.float64))
        top = [math.exp(v - hi) / denom for v in top]
    if labels is None:
        return [('class_%d' % i, p) for i, p in zip(idx, top)]
    n_labels = len(labels)
    return [(labels[i] if i < n_labels else 'class_%d' % i, p) for i, p in zip(idx, top)]


#: QuartzNet / Jasper English vocabulary; the CTC blank is the index after the last symbol.
SPEECH_VOCABULARY = tuple(" abcdefghijklmnopqrstuvwxyz'")


def ctc_greedy_decode(logits: np.ndarray, vocabulary: Sequence[str] = SPEECH_VOCABULARY) -> str:
    """Greedy CTC decoding of ``(1, V, T)`` or ``(T, V)`` logits (blank = index ``len(vocab)``).

    Takes the best symbol per frame, merges repeats, removes blanks.
    """
    a = np.asarray(logits)
    if a.ndim == 3:
        a = a[0]
        # (V, T) as QuartzNet's conv decoder emits it; (T, V) otherwise.
        if a.shape[0] == len(vocabulary) + 1:
            a = a.T
    elif a.ndim != 2:
        return ''
    best = np.argmax(a, axis=-1)
    out = []
    prev = -1
    for i in best.tolist():
        if i != prev and i < len(vocabulary):
            out.append(vocabulary[i])
        prev = i
    return ''.join(out).strip()
