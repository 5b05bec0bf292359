"""Model inputs from decoded arrays: images resized and normalised, audio as log-mel features.

This is the serving core's preprocessing (no ROS): it runs on the processor's worker just before
the inference (:class:`hetero_infer.serving.engine.Request`), so a request dropped at the queue
costs no preprocessing. Every check raises :class:`InputError` with a ``reason`` code (what the
status counts) and a message naming the offending value.
"""

import functools
import math
from typing import Dict, Sequence, Tuple

import numpy as np

from hetero_infer.errors import HeteroInferError

#: ImageNet statistics used by the torchvision classifiers of the zoo (RGB, 0..1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Reasons an input is rejected; the node counts drops under these names.
INPUT_REASONS = ('bad_encoding', 'bad_size', 'bad_step', 'empty', 'decode_failed', 'bad_audio')


class InputError(HeteroInferError, ValueError):
    """An input message cannot be turned into a model input.

    :param reason: one of :data:`INPUT_REASONS` (counted by the node).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def to_rgb(img: np.ndarray, order: str) -> np.ndarray:
    """HxWxC image in ``order`` -> HxWx3 RGB (same dtype)."""
    if order == 'rgb':
        return img
    if order == 'bgr':
        return img[:, :, ::-1]
    if order == 'rgba':
        return img[:, :, :3]
    if order == 'bgra':
        return img[:, :, 2::-1]
    if order == 'mono':
        return np.repeat(img[:, :, :1], 3, axis=2)
    raise InputError('bad_encoding', 'unknown channel order %r' % order)


@functools.lru_cache(maxsize=16)
def _blob_params(mean: Tuple[float, ...], std: Tuple[float, ...], h: int, w: int, swap: bool):
    """OpenCV's ``Image2BlobParams`` for ImageNet-style normalisation, or None before 4.8."""
    import cv2
    cls = getattr(cv2.dnn, 'Image2BlobParams', None)
    if cls is None or not hasattr(cv2.dnn, 'blobFromImageWithParams'):
        return None
    p = cls()
    p.scalefactor = tuple((1.0 / (255.0 * np.asarray(std, dtype=np.float64))).tolist()) + (0.0,)
    p.mean = tuple((255.0 * np.asarray(mean, dtype=np.float64)).tolist()) + (0.0,)
    p.size = (w, h)
    p.swapRB = swap
    return p


def preprocess_image(img: np.ndarray, order: str, input_shape: Sequence[int], *,
                     mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Resize and normalise an image to a model input ``(1, C, H, W)`` float32 (NCHW).

    ``input_shape`` is the model's input shape: ``(N, C, H, W)`` (the zoo's layout) or
    ``(C, H, W)``. C = 3 takes RGB normalised by ``mean``/``std`` on a 0..1 scale; C = 1 takes
    the grey level on a 0..1 scale. Resizing is bilinear (no crop). 8-bit colour images take
    one OpenCV call (``blobFromImageWithParams``: resize, per-channel mean and scale, BGR swap,
    NCHW), about 0.12 ms for 320x240 -> 224x224 on one core here. Splitting it into planes and
    normalising them with numpy costs 20% less CPU alone, but the node's workers then give up
    and win back the GIL eight times per frame instead of once, and under load the waits for
    the GIL cost far more than that (``bench/bench_ros_node.py``: the node's queues ran away at
    2400 requests/s that way).
    """
    import cv2
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise InputError('bad_size', 'model input shape %s is not (N, C, H, W)' % (shape,))
    _, c, h, w = shape
    if c not in (1, 3):
        raise InputError('bad_size', 'model input has %d channels; 1 or 3 supported' % c)
    if c == 3 and img.dtype == np.uint8 and order in ('rgb', 'bgr', 'rgba', 'bgra'):
        src = img if img.shape[2] == 3 else np.ascontiguousarray(img[:, :, :3])
        swap = order in ('bgr', 'bgra')
        params = _blob_params(tuple(mean), tuple(std), h, w, swap)
        if params is not None:
            return cv2.dnn.blobFromImageWithParams(src, params)
        # OpenCV < 4.8: one scale for all channels, the std applied after.
        blob = cv2.dnn.blobFromImage(src, 1.0, (w, h), tuple(255.0 * m for m in mean),
                                     swapRB=swap, crop=False)
        blob *= (1.0 / (255.0 * np.asarray(std, dtype=np.float32))).reshape(1, 3, 1, 1)
        return blob
    scale = 1.0 / (65535.0 if img.dtype == np.uint16 else 255.0)
    if c == 1:
        src = img[:, :, :1] if order == 'mono' else to_rgb(img, order).mean(axis=2, keepdims=True)
    else:
        src = to_rgb(img, order)
    resized = cv2.resize(np.ascontiguousarray(src), (w, h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    x = resized.astype(np.float32) * np.float32(scale)
    if c == 3:
        x -= np.asarray(mean, dtype=np.float32)
        x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _mel_filterbank(n_mels: int, n_fft: int, sample_rate_hz: float) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    n_bins = n_fft // 2 + 1
    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate_hz / 2.0), n_mels + 2)
    bins = np.floor((n_fft + 1) * mel_to_hz(mels) / sample_rate_hz).astype(int)
    fb = np.zeros((n_mels, n_bins), dtype=np.float32)
    for m in range(1, n_mels + 1):
        lo, mid, hi = bins[m - 1], bins[m], bins[m + 1]
        mid = max(mid, lo + 1)
        hi = max(hi, mid + 1)
        for k in range(lo, min(mid, n_bins)):
            fb[m - 1, k] = (k - lo) / float(mid - lo)
        for k in range(mid, min(hi, n_bins)):
            fb[m - 1, k] = (hi - k) / float(hi - mid)
    return fb


_FB_CACHE: Dict[Tuple[int, int, float], np.ndarray] = {}


def log_mel(samples: np.ndarray, sample_rate_hz: float, *, n_mels: int = 64,
            window_ms: float = 25.0, hop_ms: float = 10.0) -> np.ndarray:
    """Log-mel spectrogram ``(n_mels, frames)`` float32 of a mono float chunk (numpy only)."""
    win = max(16, int(round(sample_rate_hz * window_ms / 1e3)))
    hop = max(1, int(round(sample_rate_hz * hop_ms / 1e3)))
    n_fft = 1 << int(math.ceil(math.log2(win)))
    if samples.size < win:
        samples = np.pad(samples, (0, win - samples.size))
    frames = 1 + (samples.size - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(frames)[:, None]
    windowed = samples[idx] * np.hanning(win).astype(np.float32)
    power = np.abs(np.fft.rfft(windowed, n=n_fft, axis=1)) ** 2
    key = (n_mels, n_fft, float(sample_rate_hz))
    fb = _FB_CACHE.get(key)
    if fb is None:
        fb = _FB_CACHE[key] = _mel_filterbank(n_mels, n_fft, sample_rate_hz)
    return np.log(power.astype(np.float32) @ fb.T + 1e-6).T.astype(np.float32)


def preprocess_audio(samples: np.ndarray, sample_rate_hz: float,
                     input_shape: Sequence[int]) -> np.ndarray:
    """Audio chunk -> model input of ``input_shape``.

    A 3-D input ``(N, F, T)`` takes an F-band log-mel spectrogram cropped or zero-padded to T
    frames (QuartzNet / keyword-spotting style); 2-D ``(N, T)`` takes the waveform itself; 4-D
    ``(N, 1, F, T)`` takes the spectrogram as a one-channel image.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        t = shape[1]
        out = np.zeros((1, t), dtype=np.float32)
        n = min(t, samples.size)
        out[0, :n] = samples[:n]
        return out
    if len(shape) not in (3, 4):
        raise InputError('bad_audio', 'model input shape %s is not (N, T), (N, F, T) or '
                         '(N, 1, F, T)' % (shape,))
    f, t = shape[-2], shape[-1]
    spec = log_mel(samples, sample_rate_hz, n_mels=f)
    out = np.zeros((f, t), dtype=np.float32)
    n = min(t, spec.shape[1])
    out[:, :n] = spec[:, :n]
    # Per-band normalisation, as NeMo's QuartzNet preprocessor does.
    mu = out[:, :n].mean(axis=1, keepdims=True) if n else 0.0
    sd = out[:, :n].std(axis=1, keepdims=True) + 1e-5 if n else 1.0
    out[:, :n] = (out[:, :n] - mu) / sd
    return out.reshape(shape)
