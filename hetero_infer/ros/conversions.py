"""Message <-> numpy conversions of the scheduler node and the sources (a request's first hop).

cv_bridge is not available everywhere (no PyPI wheel works with numpy 2), so images are read with
a small numpy function: ``np.frombuffer`` on the message's data, a view with the row stride, no
copy for the 8-bit encodings. Every check raises :class:`InputError` with a ``reason`` code (what
the node counts in its status) and a message naming the field and the offending value.

This module imports no ROS package: it reads messages by attribute (duck typing), so it is tested
without rclpy and used by the node and the sources alike. What a model makes of the arrays
(resizing, normalising, log-mel features) is the serving core's:
:mod:`hetero_infer.serving.preprocess`.
"""

import importlib
import re
from fractions import Fraction
from typing import Any, Dict, Optional, Tuple

import numpy as np

from hetero_infer.serving.preprocess import INPUT_REASONS, InputError

__all__ = ['IMAGE_ENCODINGS', 'INPUT_REASONS', 'InputError', 'MAX_AUDIO_SAMPLE',
           'MAX_IMAGE_SIDE', 'array_to_image_fields', 'audio_input', 'audio_to_array',
           'classification', 'compressed_to_array', 'decode', 'image_to_array', 'optional_msg',
           'stated_rate']

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
MAX_IMAGE_SIDE = 16384
#: Largest audio sample magnitude accepted (int16 full scale; float PCM is in [-1, 1]).
MAX_AUDIO_SAMPLE = 32768
#: A multi-array dimension label that states the sample rate: ``samples@16000Hz`` (what
#: hetero_infer's sources write), ``pcm @ 44100 Hz``...
RATE_LABEL = re.compile(r'@\s*(\d+(?:\.\d+)?)\s*hz', re.IGNORECASE)


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

def audio_to_array(msg: Any, *, kind: str) -> np.ndarray:
    """PCM samples of an audio message as float32 in [-1, 1].

    :param kind: ``'audio_f32'`` (std_msgs/Float32MultiArray, samples in [-1, 1]),
        ``'audio_i16'`` (std_msgs/Int16MultiArray), ``'audio_data'``
        (audio_common_msgs/AudioData: int16 little-endian bytes in ``data``) or
        ``'audio_data_stamped'`` (audio_common_msgs/AudioDataStamped: the same in ``audio``).
    :raises InputError: empty chunk, NaN or infinite samples, a sample beyond
        :data:`MAX_AUDIO_SAMPLE`, wrong kind.
    """
    if kind == 'audio_f32':
        x = np.asarray(msg.data, dtype=np.float32).reshape(-1)
    elif kind == 'audio_i16':
        x = np.asarray(msg.data, dtype=np.int16).reshape(-1).astype(np.float32) / 32768.0
    elif kind in ('audio_data', 'audio_data_stamped'):
        buf = _buffer(msg.data if kind == 'audio_data' else msg.audio.data)
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

def stated_rate(msg: Any, kind: str) -> Optional[float]:
    """The sample rate an audio message states (a multi-array dimension label such as
    ``samples@16000Hz``), or None: AudioData and AudioDataStamped carry no rate (their
    AudioInfo is another topic), nor does a multi-array without such a label."""
    if kind not in ('audio_f32', 'audio_i16'):
        return None
    layout = getattr(msg, 'layout', None)
    for dim in getattr(layout, 'dim', ()) or ():
        m = RATE_LABEL.search(str(getattr(dim, 'label', '')))
        if m:
            return float(m.group(1))
    return None


def audio_input(msg: Any, *, kind: str, sample_rate_hz: int, resample: bool = False,
                out_of_range: str = 'refuse') -> Tuple[np.ndarray, int]:
    """An audio message as the application's samples: ``(float32 samples at sample_rate_hz,
    number of samples clipped)``.

    Float samples outside [-1, 1] are clipped (``out_of_range='clip'``) or refuse the chunk; a
    chunk that states another sample rate (:func:`stated_rate`) is resampled (``resample``)
    or refused.

    :raises InputError: what :func:`audio_to_array` raises; ``out_of_range`` and ``bad_rate``
        as above, naming the values and the parameter that would accept them.
    """
    x = audio_to_array(msg, kind=kind)
    clipped = 0
    if kind == 'audio_f32':
        outside = int(np.count_nonzero(np.abs(x) > 1.0))
        if outside:
            if out_of_range != 'clip':
                raise InputError('out_of_range', 'audio chunk (%s) has %d of %d samples outside '
                                 '[-1, 1] (peak %.3g); audio_out_of_range: clip would clip them'
                                 % (kind, outside, x.size, float(np.max(np.abs(x)))))
            x = np.clip(x, -1.0, 1.0)
            clipped = outside
    rate = stated_rate(msg, kind)
    if rate is not None and abs(rate - sample_rate_hz) > 1e-6:
        if rate <= 0:
            raise InputError('bad_rate', 'audio chunk (%s) states a sample rate of %g Hz'
                             % (kind, rate))
        if not resample:
            raise InputError('bad_rate', 'audio chunk (%s) states %g Hz, the application '
                             'expects sample_rate_hz %d; audio_resample: true would resample it'
                             % (kind, rate, sample_rate_hz))
        x = resample_audio(x, rate, sample_rate_hz)
    return x, clipped


def resample_audio(x: np.ndarray, from_hz: float, to_hz: int) -> np.ndarray:
    """Polyphase resampling (scipy) of ``x`` from ``from_hz`` to ``to_hz``."""
    from scipy.signal import resample_poly
    ratio = Fraction(int(to_hz), 1) / Fraction(from_hz).limit_denominator(1000)
    ratio = ratio.limit_denominator(1000)
    y = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)
    return y.astype(np.float32)


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


def decode(msg: Any, input_type: str) -> Tuple[Any, str]:
    """An input message of an application's ``input_type`` -> ``(data, channel order)``: an
    HxWxC image and its order, or float PCM samples and ``''`` (audio types).

    :raises InputError: the message cannot be decoded (see the functions above).
    """
    if input_type == 'image':
        return image_to_array(msg)  # a view: the caller keeps ``msg`` referenced through it
    if input_type == 'compressed_image':
        # Decoding is the expensive part and the only full check of the data.
        return compressed_to_array(msg)
    return audio_to_array(msg, kind=input_type), ''


def optional_msg(module: str, name: str) -> Any:
    """The message class ``module.name`` (``'vision_msgs.msg', 'Classification'``), or None
    when that message package is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def classification(msg_type: Any, doc: Dict[str, Any]) -> Any:
    """A ``vision_msgs/Classification`` (``msg_type``) of a result document with ``top_k``."""
    msg = msg_type()
    msg.header.stamp.sec = doc['stamp']['sec']
    msg.header.stamp.nanosec = doc['stamp']['nanosec']
    msg.header.frame_id = doc['frame_id']
    hyp = optional_msg('vision_msgs.msg', 'ObjectHypothesis')
    for entry in doc['top_k']:
        msg.results.append(hyp(class_id=entry['label'], score=entry['score']))
    return msg


def detection_array(msg_type: Any, doc: Dict[str, Any]) -> Any:
    """A ``vision_msgs/Detection2DArray`` (``msg_type``) of a result document with
    ``detections``: the input's header, per detection the class id (as a string) and score and
    the box centre and size in the input image's pixels."""
    det_type = optional_msg('vision_msgs.msg', 'Detection2D')
    hyp_type = optional_msg('vision_msgs.msg', 'ObjectHypothesisWithPose')
    msg = msg_type()
    msg.header.stamp.sec = doc['stamp']['sec']
    msg.header.stamp.nanosec = doc['stamp']['nanosec']
    msg.header.frame_id = doc['frame_id']
    for d in doc['detections']:
        det = det_type()
        det.header = msg.header
        hyp = hyp_type()
        hyp.hypothesis.class_id = str(d['class_id'])
        hyp.hypothesis.score = float(d['score'])
        det.results.append(hyp)
        cx, cy, w, h = (float(v) for v in d['bbox'])
        det.bbox.center.position.x = cx
        det.bbox.center.position.y = cy
        det.bbox.size_x = w
        det.bbox.size_y = h
        msg.detections.append(det)
    return msg
