"""Image / audio message conversions: every supported encoding, every rejection names its field."""

import numpy as np
import pytest

from hetero_infer.ros import conversions as cv
from hetero_infer.serving.preprocess import to_rgb

sensor_msgs = pytest.importorskip('sensor_msgs.msg')
std_msgs = pytest.importorskip('std_msgs.msg')


def _image(arr, enc, **override):
    msg = sensor_msgs.Image()
    for k, v in cv.array_to_image_fields(arr, enc).items():
        setattr(msg, k, v)
    for k, v in override.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16'])
def test_image_round_trip_every_encoding(encoding):
    rng = np.random.default_rng(1)
    channels, dtype, _ = cv.IMAGE_ENCODINGS[encoding]
    hi = 65535 if dtype == np.uint16 else 255
    arr = rng.integers(0, hi, size=(7, 5, channels)).astype(dtype)
    img, order = cv.image_to_array(_image(arr, encoding))
    assert img.dtype == dtype and img.shape == (7, 5, channels)
    np.testing.assert_array_equal(img, arr)
    rgb = to_rgb(img, order)
    assert rgb.shape == (7, 5, 3)
    if encoding == 'bgr8':
        np.testing.assert_array_equal(rgb[..., 0], arr[..., 2])


def test_padded_rows_are_skipped():
    arr = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    padded = np.zeros((4, 16), np.uint8)
    padded[:, :9] = arr.reshape(4, 9)
    msg = _image(arr, 'rgb8', step=16, data=padded.tobytes())
    img, _ = cv.image_to_array(msg)
    np.testing.assert_array_equal(img, arr)


def test_big_endian_mono16():
    arr = np.array([[1, 256], [513, 65535]], dtype=np.uint16)
    msg = _image(arr, 'mono16', is_bigendian=1, data=arr.astype('>u2').tobytes())
    img, _ = cv.image_to_array(msg)
    np.testing.assert_array_equal(img[..., 0], arr)


@pytest.mark.parametrize('override,reason,field', [
    ({'encoding': 'yuv422_yuy2'}, 'bad_encoding', 'Image.encoding'),
    ({'step': 5}, 'bad_step', 'Image.step'),
    ({'data': b''}, 'empty', 'Image.data'),
    ({'data': bytes(20)}, 'bad_size', 'Image.data'),
    ({'width': 0}, 'empty', 'Image.height'),
])
def test_bad_images_name_the_field(override, reason, field):
    msg = _image(np.zeros((4, 3, 3), np.uint8), 'rgb8', **override)
    with pytest.raises(cv.InputError) as info:
        cv.image_to_array(msg)
    assert info.value.reason == reason
    assert field in str(info.value)


def test_compressed_image_decodes_and_rejects_garbage():
    import cv2
    bgr = np.zeros((16, 24, 3), np.uint8)
    bgr[:, :12] = (255, 0, 0)
    ok, png = cv2.imencode('.png', bgr)
    assert ok
    msg = sensor_msgs.CompressedImage(format='png', data=png.tobytes())
    img, order = cv.compressed_to_array(msg)
    assert order == 'bgr' and img.shape == (16, 24, 3)
    np.testing.assert_array_equal(img, bgr)
    with pytest.raises(cv.InputError) as info:
        cv.compressed_to_array(sensor_msgs.CompressedImage(format='jpeg', data=b'\x00' * 50))
    assert info.value.reason == 'decode_failed' and 'jpeg' in str(info.value)
    with pytest.raises(cv.InputError) as info:
        cv.compressed_to_array(sensor_msgs.CompressedImage(format='jpeg'))
    assert info.value.reason == 'empty'


def test_audio_conversions_and_checks():
    f = std_msgs.Float32MultiArray(data=[0.0, 0.5, -0.5])
    np.testing.assert_allclose(cv.audio_to_array(f, kind='audio_f32'), [0.0, 0.5, -0.5])
    i = std_msgs.Int16MultiArray(data=[0, 16384, -32768])
    np.testing.assert_allclose(cv.audio_to_array(i, kind='audio_i16'), [0.0, 0.5, -1.0])
    with pytest.raises(cv.InputError) as info:
        cv.audio_to_array(std_msgs.Float32MultiArray(data=[0.1, float('nan')]), kind='audio_f32')
    assert info.value.reason == 'bad_audio' and '1 NaN' in str(info.value)
    with pytest.raises(cv.InputError) as info:
        cv.audio_to_array(std_msgs.Float32MultiArray(), kind='audio_f32')
    assert info.value.reason == 'empty'


def _chunk(x, label=None, kind=None):
    msg = (kind or std_msgs.Float32MultiArray)(data=x)
    if label is not None:
        msg.layout.dim = [std_msgs.MultiArrayDimension(label=label, size=len(x), stride=len(x))]
    return msg


def test_audio_as_sent_rate_and_range():
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(8000) / 8000.0)).astype(np.float32)
    # no stated rate, or the application's: taken as is
    x, clipped = cv.audio_input(_chunk(tone), kind='audio_f32', sample_rate_hz=16000)
    assert x.size == 8000 and clipped == 0
    x, _ = cv.audio_input(_chunk(tone, 'samples@16000Hz'), kind='audio_f32',
                          sample_rate_hz=16000)
    assert x.size == 8000
    # another rate: refused, naming both rates and the parameter, unless resampling is on
    with pytest.raises(cv.InputError) as info:
        cv.audio_input(_chunk(tone, 'samples@8000Hz'), kind='audio_f32', sample_rate_hz=16000)
    assert info.value.reason == 'bad_rate'
    assert '8000 Hz' in str(info.value) and '16000' in str(info.value)
    assert 'audio_resample' in str(info.value)
    x, _ = cv.audio_input(_chunk(tone, 'pcm @ 8000 Hz'), kind='audio_f32', sample_rate_hz=16000,
                          resample=True)
    assert x.size == 16000 and x.dtype == np.float32
    # still a 440 Hz tone at the new rate
    peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * 16000.0 / x.size
    assert abs(peak_hz - 440.0) < 2.0
    i16 = _chunk((tone * 32767).astype(np.int16), 'samples@44100Hz', std_msgs.Int16MultiArray)
    x, _ = cv.audio_input(i16, kind='audio_i16', sample_rate_hz=16000, resample=True)
    assert abs(x.size - round(8000 * 16000 / 44100)) <= 1
    # float samples outside [-1, 1]: refused by default, clipped and counted on request
    loud = np.array([0.0, 1.5, -2.0, 0.25], np.float32)
    with pytest.raises(cv.InputError) as info:
        cv.audio_input(_chunk(loud), kind='audio_f32', sample_rate_hz=16000)
    assert info.value.reason == 'out_of_range' and '2 of 4 samples' in str(info.value)
    assert 'audio_out_of_range: clip' in str(info.value)
    x, clipped = cv.audio_input(_chunk(loud), kind='audio_f32', sample_rate_hz=16000,
                                out_of_range='clip')
    np.testing.assert_allclose(x, [0.0, 1.0, -1.0, 0.25])
    assert clipped == 2


def test_audio_data_and_stamped_are_int16_bytes():
    import types
    pcm = np.array([0, 16384, -32768], '<i2').tobytes()
    plain = types.SimpleNamespace(data=pcm)
    stamped = types.SimpleNamespace(header=None, audio=types.SimpleNamespace(data=pcm))
    np.testing.assert_allclose(cv.audio_to_array(plain, kind='audio_data'), [0.0, 0.5, -1.0])
    np.testing.assert_allclose(cv.audio_to_array(stamped, kind='audio_data_stamped'),
                               [0.0, 0.5, -1.0])
    assert cv.stated_rate(stamped, 'audio_data_stamped') is None  # no rate in the message
    with pytest.raises(cv.InputError) as info:
        cv.audio_to_array(types.SimpleNamespace(audio=types.SimpleNamespace(data=b'\x00')),
                          kind='audio_data_stamped')
    assert info.value.reason == 'bad_size'
