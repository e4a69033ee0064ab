"""Fixtures for the frontend tests: where the real model files are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The verified model files: $EDGEOPT_MODELS_DIR, else ``shared/models`` beside the repo."""
    env = os.environ.get("EDGEOPT_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "models"


def _model(models_dir: Path, name: str) -> Path:
    path = models_dir / "mediapipe-selfie" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent; set EDGEOPT_MODELS_DIR to the verified models folder")
    return path


@pytest.fixture(scope="session")
def selfie_general(models_dir: Path) -> Path:
    """MediaPipe's general selfie-segmentation model (256x256)."""
    return _model(models_dir, "selfie_segmentation.tflite")


@pytest.fixture(scope="session")
def selfie_landscape(models_dir: Path) -> Path:
    """MediaPipe's landscape selfie-segmentation model (144x256)."""
    return _model(models_dir, "selfie_segmentation_landscape.tflite")
