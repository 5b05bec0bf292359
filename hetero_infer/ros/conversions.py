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
from typing import Any, Dict, Tuple

import numpy as np

from hetero_infer.serving.preprocess import INPUT_REASONS, InputError

__all__ = ['IMAGE_ENCODINGS', 'INPUT_REASONS', 'InputError', 'MAX_AUDIO_SAMPLE',
           'MAX_IMAGE_SIDE', 'array_to_image_fields', 'audio_to_array', 'classification',
           'compressed_to_array', 'decode', 'image_to_array', 'optional_msg']

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
