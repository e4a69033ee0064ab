"""The exact opset upgrade rewrites and passes need (onnx's version converter)."""

from __future__ import annotations

import onnx

from edgeopt.errors import ConfigError

__all__ = ["default_opset", "upgrade_opset"]


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX domain."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(model: onnx.ModelProto, minimum: int, why: str) -> tuple[onnx.ModelProto, str]:
    """``model`` at opset ``minimum`` or above, by onnx's version converter (exact adapters).

    Returns:
        The model and a note for the report ("" when no upgrade was needed).

    Raises:
        ConfigError: The converter cannot upgrade this model; the message says why.
    """
    have = default_opset(model)
    if have >= minimum:
        return model, ""
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, minimum)
        onnx.checker.check_model(upgraded)
    except Exception as e:  # the converter raises RuntimeError, ValidationError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{why} needs ONNX opset {minimum}, the model has {have}, and onnx's version "
            f"converter cannot upgrade it ({first}): re-export the model at opset {minimum}+"
        ) from e
    return upgraded, f"opset upgraded {have} -> {minimum} (onnx version converter) for {why}"
