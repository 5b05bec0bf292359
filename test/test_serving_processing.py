"""The serving core's pre- and post-processing (no ROS): image tensors match a float64
reference, audio tensors have the model's shape, top-k orders and labels."""

import numpy as np
import pytest

from hetero_infer.serving import postprocess
from hetero_infer.serving import preprocess as cv


def test_preprocess_image_shape_and_normalisation():
    img = np.full((480, 640, 3), 255, np.uint8)
    x = cv.preprocess_image(img, 'rgb', (1, 3, 224, 224))
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    expected = (1.0 - np.array(cv.IMAGENET_MEAN)) / np.array(cv.IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 100, 100], expected, rtol=1e-5)
    # BGR input must come out in RGB order.
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    y = cv.preprocess_image(bgr, 'bgr', (1, 3, 8, 8))
    assert y[0, 2].mean() > y[0, 0].mean()


def _reference(img, order, h, w):
    """Bilinear resize, then (x / 255 - mean) / std in float64, RGB, NCHW."""
    import cv2
    rgb = {'rgb': img, 'bgr': img[:, :, ::-1], 'rgba': img[:, :, :3],
           'bgra': img[:, :, 2::-1]}[order]
    small = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_LINEAR)
    x = (small / 255.0 - np.array(cv.IMAGENET_MEAN)) / np.array(cv.IMAGENET_STD)
    return x.transpose(2, 0, 1)[None]


@pytest.mark.parametrize('order,channels', [('rgb', 3), ('bgr', 3), ('rgba', 4), ('bgra', 4)])
@pytest.mark.parametrize('opencv_params', [True, False])
def test_preprocess_image_matches_reference(order, channels, opencv_params, monkeypatch):
    if not opencv_params:  # OpenCV < 4.8 path: blobFromImage and the std applied after
        monkeypatch.setattr(cv, '_blob_params', lambda *a: None)
    rng = np.random.default_rng(3)
    padded = rng.integers(0, 255, (50, 70 * channels + 6)).astype(np.uint8)
    img = padded[:, :70 * channels].reshape(50, 70, channels)  # rows with a stride, as a view
    x = cv.preprocess_image(img, order, (1, 3, 32, 40))
    assert x.shape == (1, 3, 32, 40) and x.dtype == np.float32
    np.testing.assert_allclose(x, _reference(img, order, 32, 40), atol=1e-5)


def test_preprocess_audio_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32) * 0.1
    mel = cv.preprocess_audio(x, 16000, (1, 64, 128))
    assert mel.shape == (1, 64, 128) and np.isfinite(mel).all()
    # 1 s at a 10 ms hop is 98 frames; the rest is zero padding.
    assert np.all(mel[0, :, 100:] == 0.0) and np.any(mel[0, :, :90] != 0.0)
    wave = cv.preprocess_audio(x, 16000, (1, 8000))
    np.testing.assert_array_equal(wave[0], x[:8000])


def test_top_k_orders_and_labels():
    out = postprocess.top_k(np.array([0.1, 3.0, 2.0, -1.0]), 2, labels=['a', 'b', 'c', 'd'])
    assert [label for label, _ in out] == ['b', 'c']
    assert out[0][1] > out[1][1] > 0.0


def _nemo_quartznet_reference(y):
    """NeMo's AudioToMelSpectrogramPreprocessor at inference, built from librosa (which NeMo
    itself uses for the filters) with QuartzNet 15x5's config written out: 16 kHz, 20 ms hann
    window (symmetric), 10 ms stride, n_fft 512, 64 slaney mels, pre-emphasis 0.97, no dither,
    log(x + 2**-24), per-feature normalisation (std with n - 1, + 1e-5), frames from
    len // hop on zero."""
    librosa = pytest.importorskip('librosa')
    from scipy.signal import windows
    y = np.asarray(y, dtype=np.float64)
    y = np.concatenate([y[:1], y[1:] - 0.97 * y[:-1]])
    spec = librosa.stft(y, n_fft=512, hop_length=160, win_length=320,
                        window=windows.hann(320, sym=True), center=True, pad_mode='constant')
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0,
                             norm='slaney')
    x = np.log(fb @ (np.abs(spec) ** 2) + 2.0 ** -24)
    seq = len(y) // 160
    v = x[:, :seq]
    out = np.zeros_like(x)
    out[:, :seq] = (v - v.mean(axis=1, keepdims=True)) / (v.std(axis=1, ddof=1, keepdims=True)
                                                          + 1e-5)
    return out


def test_mel_filters_are_librosas_slaney_filters():
    librosa = pytest.importorskip('librosa')
    want = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0,
                               norm='slaney')
    np.testing.assert_allclose(cv.mel_filterbank(64, 512, 16000), want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize('seconds', [1.0, 1.37, 2.0])
def test_speech_features_follow_nemos_quartznet_preprocessing(seconds):
    rng = np.random.default_rng(7)
    t = np.arange(int(16000 * seconds)) / 16000.0
    # a voiced-like chunk: harmonics with a moving pitch, noise, silence at the start
    y = sum(0.3 / k * np.sin(2 * np.pi * k * (120 + 40 * t) * t) for k in range(1, 8))
    y = (y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    y[:1600] = 0.0
    want = _nemo_quartznet_reference(y)
    feats = cv.preprocess_audio(y, 16000, (1, 64, 256))[0]
    n = want.shape[1] - 1  # the last centred frame is beyond NeMo's seq_len: zero in both
    assert np.all(feats[:, n:] == 0.0) and np.all(want[:, n:] == 0.0)
    np.testing.assert_allclose(feats[:, :n], want[:, :n], atol=2e-3, rtol=1e-3)
    # QuartzNet's 128-frame input takes the first 128 frames of the same features
    np.testing.assert_array_equal(cv.preprocess_audio(y, 16000, (1, 64, 128))[0],
                                  feats[:, :128])


def _nemo_matchboxnet_reference(y):
    """NeMo's AudioToMFCCPreprocessor (torchaudio MFCC, log_mels=True) built from librosa and
    scipy with MatchboxNet 3x1x64 v2's config written out: 16 kHz, 25 ms hann window (periodic,
    torch's default), 10 ms stride, n_fft 512, 64 HTK mels without area norm, log(x + 1e-6),
    64 orthonormal DCT-II coefficients; centred frames with reflected padding."""
    librosa = pytest.importorskip('librosa')
    from scipy.fft import dct
    spec = librosa.stft(np.asarray(y, dtype=np.float64), n_fft=512, hop_length=160,
                        win_length=400, window='hann', center=True, pad_mode='reflect')
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0, htk=True,
                             norm=None)
    return dct(np.log(fb @ (np.abs(spec) ** 2) + 1e-6), type=2, norm='ortho', axis=0)[:64]


def test_keyword_features_follow_nemos_matchboxnet_preprocessing():
    rng = np.random.default_rng(11)
    t = np.arange(16000) / 16000.0
    y = (0.4 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)
         + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    want = _nemo_matchboxnet_reference(y)
    assert want.shape == (64, 101)
    got = cv.preprocess_audio(y, 16000, (1, 64, 101), features='mfcc')[0]
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-3)
    with pytest.raises(cv.InputError, match="unknown audio features 'fbank'"):
        cv.preprocess_audio(y, 16000, (1, 64, 101), features='fbank')


def test_keyword_apps_take_mfcc_and_speech_apps_log_mel():
    from hetero_infer.backends import create_backend
    from hetero_infer.platform.spec import Platform
    from hetero_infer.serving.apps import load_app
    from hetero_infer.serving.config import build_config
    cfg = build_config({'backend': 'null', 'applications': ['kws', 'asr'],
                        'apps.kws.input_topic': 'a', 'apps.kws.input_type': 'audio_f32',
                        'apps.kws.model': 'matchboxnet_kws',
                        'apps.asr.input_topic': 'b', 'apps.asr.input_type': 'audio_f32',
                        'apps.asr.model': 'quartznet15x5'})
    platform = Platform.load('xavier')
    y = np.sin(np.arange(16000) / 10.0).astype(np.float32) * 0.1
    with create_backend('null', platform=platform) as be:
        kws, _ = load_app(0, cfg.apps[0], cfg, platform, be, where='t', warn=print, error=print)
        asr, _ = load_app(1, cfg.apps[1], cfg, platform, be, where='t', warn=print, error=print)
    assert (kws.audio_features, asr.audio_features) == ('mfcc', 'mel')
    np.testing.assert_array_equal(kws.preprocessor(y)()['input'],
                                  cv.preprocess_audio(y, 16000, (1, 64, 101), features='mfcc'))
    np.testing.assert_array_equal(asr.preprocessor(y)()['input'],
                                  cv.preprocess_audio(y, 16000, (1, 64, 128)))
