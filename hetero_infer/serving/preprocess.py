"""Model inputs from decoded arrays: images resized and normalised, audio as log-mel features.

This is the serving core's preprocessing (no ROS): it runs on the processor's worker just before
the inference (:class:`hetero_infer.serving.engine.Request`), so a request dropped at the queue
costs no preprocessing. Every check raises :class:`InputError` with a ``reason`` code (what the
status counts) and a message naming the offending value.
"""

import functools
import math
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np

from hetero_infer.errors import HeteroInferError

#: ImageNet statistics used by the torchvision classifiers of the zoo (RGB, 0..1 scale).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Reasons an input is rejected; the node counts drops under these names.
INPUT_REASONS = ('bad_encoding', 'bad_size', 'bad_step', 'empty', 'decode_failed', 'bad_audio',
                 'bad_rate', 'out_of_range')


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


@dataclass(frozen=True)
class MelSettings:
    """Log-mel features as NeMo's ``AudioToMelSpectrogramPreprocessor`` computes them at
    inference, with the values of QuartzNet 15x5's published config
    (``examples/asr/conf/quartznet/quartznet_15x5.yaml``: sample_rate 16000, window_size 0.02,
    window_stride 0.01, window hann, features 64, n_fft 512, normalize per_feature) and the
    preprocessor's defaults for the rest (preemph 0.97, log with 2**-24 added, power spectrum,
    slaney mel filters from 0 Hz to Nyquist, a symmetric window, a centred STFT padded with
    zeros). Dither (1e-5 in the config) is off: NeMo adds it only while training.
    """

    window_s: float = 0.02
    stride_s: float = 0.01
    n_fft: int = 512
    preemph: float = 0.97
    log_guard: float = 2.0 ** -24
    #: NeMo's CONSTANT, added to every band's standard deviation
    std_guard: float = 1e-5


QUARTZNET = MelSettings()


@dataclass(frozen=True)
class MfccSettings:
    """MFCC features as NeMo's ``AudioToMFCCPreprocessor`` computes them (torchaudio's ``MFCC``
    with ``log_mels=True``, DCT-II, ``norm='ortho'``), with the values of MatchboxNet 3x1x64
    v2's published config (``examples/asr/conf/matchboxnet/matchboxnet_3x1x64_v2.yaml``:
    sample_rate 16000, window_size 0.025, window_stride 0.01, window hann, n_mels 64, n_mfcc 64,
    n_fft 512) and torchaudio's defaults for the rest (power spectrum, periodic window, centred
    STFT with reflected padding, HTK mel filters without area normalisation from 0 Hz to
    Nyquist, log(x + 1e-6)); no normalisation after the DCT.
    """

    window_s: float = 0.025
    stride_s: float = 0.01
    n_fft: int = 512
    n_mels: int = 64
    log_offset: float = 1e-6


MATCHBOXNET = MfccSettings()


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = f >= 1000.0
    return np.where(log_part, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / (np.log(6.4) / 27.0),
                    mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)),
                    (200.0 / 3) * m)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate_hz: float, *,
                   htk: bool = False) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters from 0 Hz to Nyquist: on Slaney's mel
    scale, each scaled to unit area (``norm='slaney'``), as ``librosa.filters.mel`` makes them
    for NeMo's mel features; with ``htk``, on the HTK scale and unscaled, as torchaudio's
    ``MelScale`` makes them for NeMo's MFCC."""
    fft_hz = np.linspace(0.0, sample_rate_hz / 2.0, n_fft // 2 + 1)
    if htk:
        top = 2595.0 * np.log10(1.0 + sample_rate_hz / 2.0 / 700.0)
        mel_hz = 700.0 * (10.0 ** (np.linspace(0.0, top, n_mels + 2) / 2595.0) - 1.0)
    else:
        mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate_hz / 2.0),
                                        n_mels + 2))
    gaps = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / gaps[:-1, None]
    upper = ramps[2:] / gaps[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if not htk:
        weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def _power_frames(x: np.ndarray, win: int, hop: int, n_fft: int, *, periodic: bool,
                  reflect: bool) -> np.ndarray:
    """``(frames, n_fft // 2 + 1)`` power spectrum of centred frames, as ``torch.stft`` makes
    it: ``n_fft // 2`` samples of padding on each side (reflected or zeros), the hann window of
    ``win`` samples centred in the frame."""
    half = n_fft // 2
    x = np.pad(x, (half, half), mode='reflect' if reflect and x.size > 1 else 'constant')
    frames = 1 + (x.size - n_fft) // hop
    window = np.zeros(n_fft, dtype=np.float32)
    left = (n_fft - win) // 2
    n = np.arange(win)
    window[left:left + win] = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / (win if periodic
                                                                        else win - 1)))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.abs(np.fft.rfft(x[idx] * window, n=n_fft, axis=1)) ** 2


def _dct_ortho(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` DCT-II matrix with orthonormal scaling (torchaudio's ``create_dct``)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    dct = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    dct[0] *= 1.0 / np.sqrt(2.0)
    return dct.astype(np.float32)


def mfcc(samples: np.ndarray, sample_rate_hz: float, *, n_mfcc: int = 64,
         settings: MfccSettings = MATCHBOXNET) -> np.ndarray:
    """MFCC features ``(n_mfcc, frames)`` float32 of a mono float chunk (see
    :class:`MfccSettings`); ``1 + samples // hop`` frames."""
    win = int(settings.window_s * sample_rate_hz)
    hop = int(settings.stride_s * sample_rate_hz)
    n_fft = max(settings.n_fft, 1 << int(math.ceil(math.log2(max(win, 2)))))
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    power = _power_frames(x, win, hop, n_fft, periodic=True, reflect=True)
    key = (settings.n_mels, n_fft, float(sample_rate_hz), 'htk')
    fb = _FB_CACHE.get(key)
    if fb is None:
        fb = _FB_CACHE[key] = mel_filterbank(settings.n_mels, n_fft, sample_rate_hz, htk=True)
    logmel = np.log(fb @ power.T.astype(np.float32) + np.float32(settings.log_offset))
    return (_dct_ortho(n_mfcc, settings.n_mels) @ logmel).astype(np.float32)


_FB_CACHE: Dict[Tuple, np.ndarray] = {}


def log_mel(samples: np.ndarray, sample_rate_hz: float, *, n_mels: int = 64,
            settings: MelSettings = QUARTZNET) -> Tuple[np.ndarray, int]:
    """Per-band normalised log-mel features ``(n_mels, frames)`` float32 of a mono float chunk
    (see :class:`MelSettings`), and how many frames are valid (NeMo's ``seq_len``,
    ``samples // hop``: the rest are zero, as NeMo masks them)."""
    win = int(settings.window_s * sample_rate_hz)
    hop = int(settings.stride_s * sample_rate_hz)
    n_fft = max(settings.n_fft, 1 << int(math.ceil(math.log2(max(win, 2)))))
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if settings.preemph:
        x = np.concatenate([x[:1], x[1:] - np.float32(settings.preemph) * x[:-1]])
    # centred frames padded with zeros (NeMo's pad_mode='constant'), symmetric window
    power = _power_frames(x, win, hop, n_fft, periodic=False, reflect=False)
    frames = power.shape[0]
    key = (n_mels, n_fft, float(sample_rate_hz))
    fb = _FB_CACHE.get(key)
    if fb is None:
        fb = _FB_CACHE[key] = mel_filterbank(n_mels, n_fft, sample_rate_hz)
    feats = np.log(fb @ power.T.astype(np.float32) + np.float32(settings.log_guard))
    valid = min(frames, int(samples.size) // hop)
    out = np.zeros_like(feats)
    if valid > 0:
        v = feats[:, :valid].astype(np.float64)
        mean = v.mean(axis=1, keepdims=True)
        std = v.std(axis=1, ddof=1, keepdims=True) if valid > 1 else np.zeros_like(mean)
        out[:, :valid] = (v - mean) / (std + settings.std_guard)
    return out, valid


def preprocess_audio(samples: np.ndarray, sample_rate_hz: float,
                     input_shape: Sequence[int], *, features: str = 'mel') -> np.ndarray:
    """Audio chunk -> model input of ``input_shape``.

    A 3-D input ``(N, F, T)`` takes an F-band log-mel spectrogram cropped or zero-padded to T
    frames (QuartzNet / keyword-spotting style); 2-D ``(N, T)`` takes the waveform itself; 4-D
    ``(N, 1, F, T)`` takes the spectrogram as a one-channel image. The features are NeMo's:
    ``features='mel'`` as for QuartzNet 15x5 (:class:`MelSettings`), ``'mfcc'`` as for
    MatchboxNet (:class:`MfccSettings`), so a user's trained NeMo ONNX reads what it was
    trained on.
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
    if features == 'mfcc':
        spec = mfcc(samples, sample_rate_hz, n_mfcc=f)
        valid = spec.shape[1]
    elif features == 'mel':
        spec, valid = log_mel(samples, sample_rate_hz, n_mels=f)
    else:
        raise InputError('bad_audio', 'unknown audio features %r (mel or mfcc)' % (features,))
    out = np.zeros((f, t), dtype=np.float32)
    n = min(t, valid)  # normalised over the whole chunk, then cropped or zero-padded to T
    out[:, :n] = spec[:, :n]
    return out.reshape(shape)
