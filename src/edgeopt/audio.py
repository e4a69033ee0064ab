"""Audio for calibration and evaluation: a file or built-in speech, in windows; disjoint roles.

An audio model takes fixed windows of mono samples at its own rate (Silero VAD: 512 samples
at 16 kHz, after 64 samples of the previous window as context). `load_audio` reads any file
FFmpeg decodes (wav, flac, mp3, the audio track of a video) through PyAV, mixes it to mono,
resamples it to the model's rate as float32 in [-1, 1], and cuts it into consecutive windows,
so a model with recurrent state sees a real sequence.

Roles never share a sample: calibration takes the first half of a file, evaluation the second
half. The built-in set is real synthesized speech with pauses and background noise: Debian's
espeak-ng speaks different sentences in different voices for each role (calibration: one
British and one American male voice; evaluation: other sentences, a Scottish voice and a
faster American one), so a model is scored on speech it was not calibrated on, silences
included. No download: espeak-ng is installed at set-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from edgeopt.errors import ConfigError, ModelLoadError

__all__ = ["AudioSet", "load_audio", "windows"]

Role = Literal["calibration", "evaluation"]

_SPEECH: dict[str, tuple[tuple[str, str], ...]] = {
    "calibration": (
        ("en-gb", "The weather today is bright and clear, with a light wind from the west."),
        ("en-us", "Please remember to bring your notes to the meeting on Thursday morning."),
        ("en-gb", "A small boat drifted slowly across the harbour as the sun went down."),
    ),
    "evaluation": (
        ("en-gb-scotland", "Can you hear me now? I think the microphone was muted before."),
        ("en-us+f3", "Seven hundred people signed up for the marathon in only two days."),
        ("en-gb-scotland", "Turn left at the station, then walk straight on to the museum."),
    ),
}


@dataclass(frozen=True)
class AudioSet:
    """Mono audio for one role, and where it came from.

    Attributes:
        samples: float32 samples in [-1, 1] at ``rate``.
        rate: Samples per second.
        source: What it is, for reports.
    """

    samples: np.ndarray
    rate: int
    source: str


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x.astype(np.float32)
    from scipy.signal import resample_poly

    f = Fraction(dst, src)
    return np.asarray(resample_poly(x, f.numerator, f.denominator), np.float32)


def _read_file(path: Path, rate: int) -> np.ndarray:
    """The whole file as mono float32 at ``rate`` (PyAV decodes and resamples)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ModelLoadError(f"{path}: no audio stream")
            # Planar float at the model's rate, channels kept: the mono mix is their mean
            # (FFmpeg's own stereo-to-mono downmix adds them at -3 dB, 0.71x a centred sound).
            resampler = av.AudioResampler(format="fltp", rate=rate)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
    except (av.error.FFmpegError, OSError) as e:
        raise ModelLoadError(f"{path}: cannot decode audio: {e}") from e
    if not chunks:
        raise ModelLoadError(f"{path}: the audio stream holds no samples")
    return np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)


def _speak(voice: str, text: str, folder: Path) -> tuple[np.ndarray, int]:
    out = folder / "speech.wav"
    try:
        subprocess.run(
            ["espeak-ng", "-v", voice, "-w", str(out), text],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        with wave.open(str(out)) as w:
            rate, width = w.getframerate(), w.getsampwidth()
            data = w.readframes(w.getnframes())
    except (subprocess.SubprocessError, OSError, wave.Error) as e:
        raise ConfigError(f"espeak-ng could not synthesize the built-in speech: {e}") from e
    if width != 2:
        raise ConfigError(f"espeak-ng wrote {8 * width}-bit samples; 16-bit expected")
    return np.frombuffer(data, np.int16).astype(np.float32) / 32768.0, rate


def _builtin(role: Role, rate: int) -> AudioSet:
    if shutil.which("espeak-ng") is None:
        raise ConfigError(
            "the built-in speech set needs espeak-ng (apt-get install espeak-ng), or give "
            "--data with an audio file (wav, flac, mp3, or a video's audio track)"
        )
    rng = np.random.default_rng(0 if role == "calibration" else 1)
    parts = [np.zeros(rate // 4, np.float32)]
    with tempfile.TemporaryDirectory(prefix="edgeopt-speech-") as tmp:
        for voice, text in _SPEECH[role]:
            speech, src = _speak(voice, text, Path(tmp))
            parts += [_resample(speech, src, rate), np.zeros(int(rate * 0.6), np.float32)]
    clean = np.concatenate(parts)
    # A quiet room: noise about 25 dB below the speech (by energy per 100 ms).
    noise = rng.normal(0.0, 0.01 * float(np.abs(clean).max()), clean.shape).astype(np.float32)
    samples = np.clip(clean + noise, -1.0, 1.0)
    voices = ", ".join(sorted({v for v, _ in _SPEECH[role]}))
    return AudioSet(
        samples,
        rate,
        f"built-in speech ({role}): {len(_SPEECH[role])} sentences by espeak-ng ({voices}), "
        f"pauses and noise, {len(samples) / rate:.1f} s",
    )


def load_audio(
    source: str | os.PathLike[str] | None, rate: int, role: Role = "evaluation"
) -> AudioSet:
    """Mono float32 audio at ``rate`` for one role; calibration and evaluation never overlap.

    Args:
        source: ``None``, ``"builtin"`` or ``"auto"`` for the built-in speech, else a file
            (its first half calibrates, its second half evaluates).
        rate: The model's sample rate.
        role: ``"calibration"`` or ``"evaluation"``.

    Raises:
        ConfigError: No such file, or espeak-ng missing for the built-in set.
        ModelLoadError: The file cannot be decoded or holds no audio.
    """
    if source is None or str(source) in ("builtin", "auto"):
        return _builtin(role, rate)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"audio source {str(source)!r} is not a file (or 'builtin')")
    samples = _read_file(path, rate)
    half = len(samples) // 2
    mine = samples[:half] if role == "calibration" else samples[half:]
    lo, hi = (0, half) if role == "calibration" else (half, len(samples))
    return AudioSet(
        mine, rate, f"audio {path.name}, {lo / rate:.1f}-{hi / rate:.1f} s ({role} half)"
    )


def windows(audio: AudioSet, window: int, context: int = 0, count: int | None = None) -> np.ndarray:
    """Consecutive windows ``[n, context + window]``: each window's new samples after the last
    ``context`` samples of the one before (zeros before the first), as a streaming model
    takes them.

    Args:
        audio: The samples.
        window: New samples per window.
        context: Samples of the previous window put first.
        count: At most this many windows (from the start); None: every whole window.

    Raises:
        ConfigError: Not even one whole window.
    """
    n = len(audio.samples) // window
    if count is not None:
        n = min(n, count)
    if n < 1:
        raise ConfigError(
            f"{audio.source}: {len(audio.samples)} samples do not fill one window of {window}"
        )
    padded = np.concatenate([np.zeros(context, np.float32), audio.samples[: n * window]])
    starts = np.arange(n) * window
    idx = starts[:, None] + np.arange(context + window)[None, :]
    return np.asarray(padded[idx], np.float32)
