"""Camera and audio sources: synthetic or recorded streams at given rates, properly stamped.

One stream per application of the scheduler's configuration (same ``applications`` /
``apps.<name>.*`` parameters, so one file configures both), or given explicitly:

- images (``image`` -> sensor_msgs/Image, ``compressed_image`` -> CompressedImage, JPEG): a
  moving pattern (gradient with a bright square crossing it), or the frames of a video file or an
  image folder read with OpenCV, looped;
- audio (``audio_f32`` / ``audio_i16`` -> std_msgs multi-arrays of PCM samples, ``audio_data`` /
  ``audio_data_stamped`` -> audio_common_msgs AudioData / AudioDataStamped when installed): a
  generated chirp with noise, or a 16-bit PCM WAV file, looped, cut into ``chunk_s`` chunks.

Each stream is published in its input's own type and with QoS the scheduler's input accepts
(``input_qos``). A stream that cannot be published (its message package is not installed, or
this process already has another type on the topic) is skipped with an error in the log; the
other streams go on.

Every message carries ``header.stamp`` = the node clock at publication (images, stamped audio)
and ``frame_id``; audio multi-arrays have no header, their layout label carries the sample rate.
"""

import os
import threading
import time
import wave
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import MultiArrayDimension

from hetero_infer.errors import ConfigError
from hetero_infer.ros import inputs
from hetero_infer.ros.lifecycle import RCLError, run_main

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')


@dataclass(frozen=True)
class StreamSpec:
    """One published stream."""

    name: str
    topic: str
    kind: str                      # an input_type: image, compressed_image, audio_f32, ...
    rate_hz: float
    width: int = 640
    height: int = 480
    encoding: str = 'rgb8'
    video: str = ''                # video file or image folder; '' = moving pattern
    wav: str = ''                  # 16-bit PCM WAV; '' = generated chirp
    sample_rate_hz: int = 16000
    chunk_s: float = 1.0
    frame_id: str = ''
    qos: str = 'by_type'           # the input's input_qos (auto publishes by_type)


def streams_from_params(values: Dict[str, Any], *, width: int = 640, height: int = 480,
                        video: str = '', wav: str = '') -> List[StreamSpec]:
    """Streams matching a scheduler configuration (flat parameter names -> values)."""
    names = [n for n in values.get('applications', []) if n]
    if not names:
        raise ConfigError('sources: the configuration lists no applications; pass the '
                          "scheduler's parameter file, e.g. ros2 run hetero_infer sources_node "
                          '--ros-args --params-file config/serve.yaml')
    out = []
    for n in names:
        def get(key, default, n=n):
            return values.get('apps.%s.%s' % (n, key), default)
        kind = get('input_type', 'image')
        out.append(StreamSpec(
            name=n, topic=get('input_topic', n), kind=kind, rate_hz=float(get('rate_hz', 10.0)),
            width=width, height=height, video=video if kind.endswith('image') else '',
            wav=wav if kind.startswith('audio') else '',
            sample_rate_hz=int(get('sample_rate_hz', 16000)),
            chunk_s=1.0 / max(float(get('rate_hz', 10.0)), 1e-3), frame_id=n,
            qos=get('input_qos', 'by_type')))
    return out


class _ImageSource:
    def __init__(self, spec: StreamSpec, seed: int) -> None:
        self.spec = spec
        self.frame = 0
        self._cap = None
        self._files: List[str] = []
        if spec.video:
            import cv2
            if os.path.isdir(spec.video):
                self._files = sorted(os.path.join(spec.video, f) for f in os.listdir(spec.video)
                                     if f.lower().endswith(IMAGE_EXTENSIONS))
                if not self._files:
                    raise ConfigError('sources: image folder %s has no images (%s)'
                                      % (spec.video, ', '.join(IMAGE_EXTENSIONS)))
            else:
                self._cap = cv2.VideoCapture(spec.video)
                if not self._cap.isOpened():
                    raise ConfigError('sources: cannot open video %s' % spec.video)
        else:
            h, w = spec.height, spec.width
            y, x = np.mgrid[0:h, 0:w].astype(np.float32)
            rng = np.random.default_rng(seed)
            phase = rng.uniform(0, 2 * np.pi, 3)
            base = np.stack([127 + 100 * np.sin(x / 37.0 + phase[0]),
                             127 + 100 * np.sin(y / 23.0 + phase[1]),
                             127 + 100 * np.sin((x + y) / 51.0 + phase[2])], axis=2)
            # Twice as wide so that a moving window is a slice, not a copy of the whole frame.
            self._base = np.concatenate([base, base], axis=1).astype(np.uint8)

    def next_bgr_or_rgb(self):
        """(HxWx3 uint8 array, 'rgb' or 'bgr')."""
        self.frame += 1
        if self._cap is not None:
            ok, img = self._cap.read()
            if not ok:
                self._cap.set(1, 0)  # CAP_PROP_POS_FRAMES: loop
                ok, img = self._cap.read()
                if not ok:
                    raise ConfigError('sources: video %s has no frames' % self.spec.video)
            return img, 'bgr'
        if self._files:
            import cv2
            path = self._files[(self.frame - 1) % len(self._files)]
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise ConfigError('sources: cannot read image %s' % path)
            return img, 'bgr'
        s = self.spec
        shift = (self.frame * 4) % s.width
        img = self._base[:, shift:shift + s.width].copy()
        size = max(8, s.height // 6)
        cx = int((s.width - size) * (0.5 + 0.5 * np.sin(self.frame / 15.0)))
        cy = int((s.height - size) * (0.5 + 0.5 * np.cos(self.frame / 11.0)))
        img[cy:cy + size, cx:cx + size] = 255
        return img, 'rgb'

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class _AudioSource:
    def __init__(self, spec: StreamSpec, seed: int) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.pos = 0
        self.chunk = max(1, int(round(spec.sample_rate_hz * spec.chunk_s)))
        self._wav: Optional[np.ndarray] = None
        if spec.wav:
            try:
                with wave.open(spec.wav, 'rb') as w:
                    if w.getsampwidth() != 2:
                        raise ConfigError('sources: %s has %d-byte samples; 16-bit PCM needed'
                                          % (spec.wav, w.getsampwidth()))
                    data = np.frombuffer(w.readframes(w.getnframes()), dtype='<i2')
                    ch = w.getnchannels()
                    self._wav = data.reshape(-1, ch)[:, 0].astype(np.float32) / 32768.0
                    self.rate = w.getframerate()
            except (OSError, wave.Error) as exc:
                raise ConfigError('sources: cannot read WAV %s: %s' % (spec.wav, exc)) from None
            if self._wav.size == 0:
                raise ConfigError('sources: WAV %s has no samples' % spec.wav)
            self.chunk = max(1, int(round(self.rate * spec.chunk_s)))

    def next_chunk(self) -> np.ndarray:
        if self._wav is not None:
            idx = (self.pos + np.arange(self.chunk)) % self._wav.size
            self.pos = (self.pos + self.chunk) % self._wav.size
            return self._wav[idx]
        sr = float(self.spec.sample_rate_hz)
        t = (self.pos + np.arange(self.chunk)) / sr
        self.pos += self.chunk
        f0 = 300.0 + 200.0 * np.sin(2 * np.pi * 0.1 * t)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * self.rng.standard_normal(self.chunk)
        return x.astype(np.float32)


class SourcesNode(Node):
    """Publishes ``streams`` until destroyed; ``published[name]`` counts messages sent.

    :param streams: what to publish; None = read the scheduler-style parameters
        (``applications``, ``apps.<name>.*``) given to this node. ``skipped[name]`` says why a
        stream is not published (see the module docstring).
    """

    #: a stream starts when its topic has a subscriber, or after this many seconds without one
    MATCH_WAIT_S = 5.0

    def __init__(self, streams: Optional[Sequence[StreamSpec]] = None, *,
                 node_name: str = 'sources', namespace: Optional[str] = None,
                 seed: int = 0, context=None) -> None:
        kwargs = {} if context is None else {'context': context}
        super().__init__(node_name, namespace=namespace or '',
                         automatically_declare_parameters_from_overrides=streams is None,
                         **kwargs)
        if streams is None:
            values = {name: p.value for name, p in self._parameters.items()}
            streams = streams_from_params(values)
        self.streams = list(streams)
        self.published: Dict[str, int] = {s.name: 0 for s in self.streams}
        self._lock = threading.Lock()
        self._timers = []
        self.skipped: Dict[str, str] = {}  # stream -> why it is not published
        for i, s in enumerate(self.streams):
            if s.rate_hz <= 0:
                continue
            if s.kind not in STREAM_TYPES:
                raise ConfigError('sources: stream %s has input_type %r; %s expected'
                                  % (s.name, s.kind, ', '.join(STREAM_TYPES)))
            msg_type = inputs.input_message_type(s.kind)
            if msg_type is None:
                self._skip(s, 'input_type %s needs audio_common_msgs, which is not installed'
                           % s.kind)
                continue
            try:
                pub = self.create_publisher(msg_type, s.topic, publisher_qos(s))
            except RCLError as exc:  # another type on this topic in this process
                self._skip(s, 'cannot publish %s on %s: %s' % (
                    msg_type.__name__, s.topic, ' '.join(str(exc).split())[:300]))
                continue
            if s.kind in ('image', 'compressed_image'):
                cb = self._image_callback(s, _ImageSource(s, seed + i), pub)
            else:
                cb = self._audio_callback(s, _AudioSource(s, seed + i), pub, msg_type)
            self._timers.append(self.create_timer(1.0 / s.rate_hz,
                                                  self._when_matched(s, pub, cb)))
        self.get_logger().info('publishing %s' % ', '.join(
            '%s (%s) at %.1f Hz on %s' % (s.name, s.kind, s.rate_hz, s.topic)
            for s in self.streams if s.name not in self.skipped))

    def _when_matched(self, s: StreamSpec, pub, cb):
        """``cb`` once ``pub`` has a subscriber, or after :attr:`MATCH_WAIT_S` without one.

        A frame published before discovery has matched the reader is lost without a trace
        (best effort or volatile): at 1280x720 that was the first 12-13 frames of every stream
        in a two-process run, frames that then appear in no counter on either side."""
        t0 = time.monotonic()
        started = [False]

        def gated():
            if not started[0]:
                if pub.get_subscription_count() == 0 \
                        and time.monotonic() - t0 < self.MATCH_WAIT_S:
                    return
                started[0] = True
                if pub.get_subscription_count() == 0:
                    self.get_logger().warning(
                        'stream %s: no subscriber on %s after %.0f s; publishing anyway'
                        % (s.name, s.topic, self.MATCH_WAIT_S))
            cb()
        return gated

    def _skip(self, s: StreamSpec, why: str) -> None:
        self.skipped[s.name] = why
        self.get_logger().error('stream %s not published: %s' % (s.name, why))

    def _count(self, name: str) -> None:
        with self._lock:
            self.published[name] += 1

    def _image_callback(self, s: StreamSpec, src: _ImageSource, pub):
        import cv2

        def cb():
            img, order = src.next_bgr_or_rgb()
            stamp = self.get_clock().now().to_msg()
            if s.kind == 'compressed_image':
                bgr = img if order == 'bgr' else img[:, :, ::-1]
                ok, jpg = cv2.imencode('.jpg', np.ascontiguousarray(bgr))
                msg = CompressedImage(format='jpeg', data=jpg.tobytes())
            else:
                enc = 'bgr8' if order == 'bgr' else 'rgb8'
                h, w = img.shape[:2]
                msg = Image(height=h, width=w, encoding=enc, is_bigendian=0, step=w * 3,
                            data=img.tobytes())
            msg.header.stamp = stamp
            msg.header.frame_id = s.frame_id or s.name
            pub.publish(msg)
            self._count(s.name)
        return cb

    def _audio_callback(self, s: StreamSpec, src: _AudioSource, pub, msg_type):
        def cb():
            x = src.next_chunk()
            pcm = np.clip(x * 32768.0, -32768, 32767).astype(np.int16)
            msg = msg_type()
            if s.kind == 'audio_f32':
                msg.data = x
            elif s.kind == 'audio_i16':
                msg.data = pcm
            elif s.kind == 'audio_data':
                msg.data = pcm.astype('<i2').tobytes()
            else:  # audio_data_stamped
                msg.audio.data = pcm.astype('<i2').tobytes()
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.header.frame_id = s.frame_id or s.name
            if hasattr(msg, 'layout'):
                msg.layout.dim = [MultiArrayDimension(
                    label='samples@%dHz' % s.sample_rate_hz, size=int(x.size),
                    stride=int(x.size))]
            pub.publish(msg)
            self._count(s.name)
        return cb


#: The input types a stream can have.
STREAM_TYPES = ('image', 'compressed_image', 'audio_f32', 'audio_i16', 'audio_data',
                'audio_data_stamped')


def publisher_qos(s: StreamSpec) -> QoSProfile:
    """QoS the scheduler's input (``input_qos``) accepts: best effort for sensor data,
    reliable otherwise (a reliable writer also reaches a best-effort reader)."""
    choice = 'by_type' if s.qos == 'auto' else s.qos
    if choice == 'by_type':
        choice = 'sensor_data' if s.kind in ('image', 'compressed_image') else 'reliable'
    if choice == 'sensor_data':
        return qos_profile_sensor_data
    if choice == 'system_default':
        return qos_profile_system_default
    return QoSProfile(depth=10)


def main(args=None) -> int:
    """``ros2 run hetero_infer sources_node --ros-args --params-file config/serve.yaml``
    (with the package's Fast DDS profile unless the user chose one)."""
    import sys

    from hetero_infer import dds_profile
    try:
        dds_profile.apply()
    except ConfigError as exc:
        print('sources_node: error: %s' % exc, file=sys.stderr)
        return 1
    return run_main('sources_node', lambda: [SourcesNode()], args)


if __name__ == '__main__':
    raise SystemExit(main())

