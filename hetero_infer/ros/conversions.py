"""Message <-> numpy conversions and model-input preprocessing for the scheduler node.

cv_bridge is not available everywhere (no PyPI wheel works with numpy 2), so images are read with
a small numpy function: ``np.frombuffer`` on the message's data, a view with the row stride, no
copy for the 8-bit encodings. Every check raises :class:`InputError` with a ``reason`` code (what
the node counts in its status) and a message naming the field and the offending value.

This module imports no ROS package: it reads messages by attribute (duck typing), so it is tested
without rclpy and used by the node and the sources alike.
"""

import functools
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from hetero_infer.errors import HeteroInferError

#: encoding -> (channels, numpy dtype, channel order a model wants converted from)
IMAGE_ENCODINGS = {
    'rgb8': (3, np.uint8, 'rgb'),
    'bgr8': (3, np.uint8, 'bgr'),
    'rgba8': (4, np.uint8, 'rgba'),
    'bgra8': (4, np.uint8, 'bgra'),
    'mono8': (1, np.uint8, 'mono'),
    '8UC1': (1, np.uint8, 'mono'),
    '8UC3': (3, np.uint8, 'bgr'),    # OpenCV's default order
    'mono16': (1, np.uint16, 'mono'),
    '16UC1': (1, np.uint16, 'mono'),
}

#: ImageNet statistics used by the torchvision classifiers of the zoo (RGB, 0..1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Reasons an input is rejected; the node counts drops under these names.
INPUT_REASONS = ('bad_encoding', 'bad_size', 'bad_step', 'empty', 'decode_failed', 'bad_audio')

MAX_IMAGE_SIDE = 16384
#: Largest audio sample magnitude accepted (int16 full scale; float PCM is in [-1, 1]).
MAX_AUDIO_SAMPLE = 32768


class InputError(HeteroInferError, ValueError):
    """An input message cannot be turned into a model input.

    :param reason: one of :data:`INPUT_REASONS` (counted by the node).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _buffer(data: Any) -> np.ndarray:
    """A uint8 view of a message's ``data`` (array.array, bytes, list or numpy)."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # array.array('B') from rclpy
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_array(msg: Any) -> Tuple[np.ndarray, str]:
    """``sensor_msgs/Image`` -> ``(array HxWxC, channel order)``.

    The array is a view of the message data when possible (do not modify it).

    :raises InputError: unknown encoding, zero or huge size, step smaller than a row or not a
        multiple of the pixel size, data shorter than ``step * height``.
    """
    encoding = str(msg.encoding)
    spec = IMAGE_ENCODINGS.get(encoding)
    if spec is None:
        raise InputError('bad_encoding', 'Image.encoding %r is not supported (supported: %s)'
                         % (encoding, ', '.join(sorted(IMAGE_ENCODINGS))))
    channels, dtype, order = spec
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise InputError('empty', 'Image.height x width is %d x %d' % (height, width))
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise InputError('bad_size', 'Image.height x width %d x %d exceeds %d'
                         % (height, width, MAX_IMAGE_SIDE))
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise InputError('bad_step', 'Image.step %d is smaller than width %d x %d bytes = %d'
                         % (step, width, channels * itemsize, row_bytes))
    if step % itemsize:
        raise InputError('bad_step', 'Image.step %d is not a multiple of the %d-byte sample'
                         % (step, itemsize))
    buf = _buffer(msg.data)
    if buf.size == 0:
        raise InputError('empty', 'Image.data is empty (%s %dx%d)' % (encoding, width, height))
    need = step * height
    if buf.size < need:
        raise InputError('bad_size', 'Image.data has %d bytes, step %d x height %d needs %d'
                         % (buf.size, step, height, need))
    rows = buf[:need].reshape(height, step)[:, :row_bytes]
    if itemsize > 1:
        # Big-endian senders are rare but legal: honour is_bigendian.
        be = bool(getattr(msg, 'is_bigendian', 0))
        dt = np.dtype(dtype).newbyteorder('>' if be else '<')
        img = np.ascontiguousarray(rows).view(dt).astype(dtype, copy=False)
    else:
        img = rows
    return img.reshape(height, width, channels), order


def compressed_to_array(msg: Any) -> Tuple[np.ndarray, str]:
    """``sensor_msgs/CompressedImage`` (jpeg, png, ...) -> ``(array HxWxC, 'bgr' or 'mono')``.

    :raises InputError: empty data or data OpenCV cannot decode (format named).
    """
    import cv2
    buf = _buffer(msg.data)
    fmt = str(getattr(msg, 'format', ''))
    if buf.size == 0:
        raise InputError('empty', 'CompressedImage.data is empty (format %r)' % fmt)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError('decode_failed', 'CompressedImage.data (%d bytes, format %r) cannot be '
                         'decoded' % (buf.size, fmt))
    if img.ndim == 2:
        return img[:, :, None], 'mono'
    return img, ('bgra' if img.shape[2] == 4 else 'bgr')


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


def audio_to_array(msg: Any, *, kind: str) -> np.ndarray:
    """PCM samples of an audio message as float32 in [-1, 1].

    :param kind: ``'audio_f32'`` (std_msgs/Float32MultiArray, samples in [-1, 1]),
        ``'audio_i16'`` (std_msgs/Int16MultiArray) or ``'audio_data'``
        (audio_common_msgs/AudioData: int16 little-endian bytes in ``data``).
    :raises InputError: empty chunk, NaN or infinite samples, a sample beyond
        :data:`MAX_AUDIO_SAMPLE`, wrong kind.
    """
    if kind == 'audio_f32':
        x = np.asarray(msg.data, dtype=np.float32).reshape(-1)
    elif kind == 'audio_i16':
        x = np.asarray(msg.data, dtype=np.int16).reshape(-1).astype(np.float32) / 32768.0
    elif kind == 'audio_data':
        buf = _buffer(msg.data)
        if buf.size % 2:
            raise InputError('bad_size', 'AudioData.data has %d bytes, not whole int16 samples'
                             % buf.size)
        x = buf.view('<i2').astype(np.float32) / 32768.0
    else:
        raise InputError('bad_audio', 'unknown audio input kind %r' % kind)
    if x.size == 0:
        raise InputError('empty', 'audio chunk (%s) has no samples' % kind)
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - np.count_nonzero(finite))
        raise InputError('bad_audio', 'audio chunk (%s) has %d NaN/infinite samples of %d'
                         % (kind, bad, x.size))
    peak = float(np.max(np.abs(x)))
    if peak > MAX_AUDIO_SAMPLE:
        # float PCM is [-1, 1]; beyond the int16 scale the spectrogram would overflow float32
        raise InputError('bad_audio', 'audio chunk (%s) has a sample of magnitude %.3g, beyond '
                         '%d (float audio is in [-1, 1])' % (kind, peak, MAX_AUDIO_SAMPLE))
    return x


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


def array_to_image_fields(img: np.ndarray, encoding: str) -> Dict[str, Any]:
    """Fields of a ``sensor_msgs/Image`` for an HxW[xC] array (used by the sources and tests)."""
    spec = IMAGE_ENCODINGS.get(encoding)
    if spec is None:
        raise InputError('bad_encoding', 'encoding %r is not supported' % encoding)
    channels, dtype, _ = spec
    a = np.ascontiguousarray(img, dtype=dtype)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] != channels:
        raise InputError('bad_size', 'array has %d channels, %s needs %d'
                         % (a.shape[2], encoding, channels))
    h, w = a.shape[:2]
    return {'height': h, 'width': w, 'encoding': encoding, 'is_bigendian': 0,
            'step': w * channels * a.itemsize, 'data': a.tobytes()}


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
