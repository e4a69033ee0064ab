"""Audio for audio models: files decoded and resampled, built-in speech, windows with context."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgeopt.audio import AudioSet, load_audio, windows
from edgeopt.errors import ConfigError, ModelLoadError


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(rate)
        stereo = np.repeat((samples * 32767).astype(np.int16)[:, None], 2, axis=1)
        f.writeframes(stereo.tobytes())
    return path


def test_a_file_is_resampled_and_split_by_role(tmp_path: Path) -> None:
    t = np.arange(44100 * 2) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)  # 2 s of A4 at 44.1 kHz, stereo
    path = write_wav(tmp_path / "tone.wav", tone, 44100)
    cal = load_audio(path, 16000, "calibration")
    ev = load_audio(path, 16000, "evaluation")
    assert cal.rate == 16000 and abs(len(cal.samples) + len(ev.samples) - 32000) < 100
    assert "0.0-1.0 s (calibration half)" in cal.source and "(evaluation half)" in ev.source
    spectrum = np.abs(np.fft.rfft(ev.samples[:16000]))
    assert abs(int(spectrum.argmax()) - 440) <= 1  # still 440 Hz after resampling
    assert 0.45 < float(np.abs(ev.samples).max()) < 0.55


def test_builtin_speech_differs_by_role() -> None:
    cal = load_audio(None, 16000, "calibration")
    ev = load_audio("builtin", 16000, "evaluation")
    assert "espeak-ng" in cal.source and "en-gb-scotland" in ev.source
    assert len(cal.samples) > 16000 * 5 and len(ev.samples) > 16000 * 5
    n = min(len(cal.samples), len(ev.samples))
    assert not np.allclose(cal.samples[:n], ev.samples[:n], atol=0.05)
    # Speech and pauses: the loudest 100 ms is far louder than the quietest.
    frames = ev.samples[: len(ev.samples) // 1600 * 1600].reshape(-1, 1600)
    energy = (frames**2).mean(axis=1)
    assert energy.max() > 100 * energy.min()


def test_windows_carry_context() -> None:
    audio = AudioSet(np.arange(20, dtype=np.float32), 16000, "ramp")
    w = windows(audio, window=6, context=2)
    assert w.shape == (3, 8)
    assert w[0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]  # zeros before the first window
    assert w[1].tolist() == [4, 5, 6, 7, 8, 9, 10, 11]  # the last 2 samples of the one before
    assert windows(audio, 6, 2, count=1).shape == (1, 8)
    with pytest.raises(ConfigError, match="do not fill one window of 64"):
        windows(audio, 64)


def test_bad_audio_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    with pytest.raises(ModelLoadError, match=r"bad\.wav"):
        load_audio(bad, 16000)
    with pytest.raises(ConfigError, match="is not a file"):
        load_audio(tmp_path / "missing.wav", 16000)
