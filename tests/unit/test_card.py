"""Model cards: stored in the ONNX file, read back, merged with a user's YAML card."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from _helpers import store_card as store
from edgeopt.artifact import load_onnx
from edgeopt.card import CARD_KEY, ModelCard, card_fields, card_of, parse_card, resolve_card
from edgeopt.errors import ConfigError
from edgeopt.interface import load_card
from edgeopt.tasks import DetectionTask, GenericTask, LandmarksTask

CARD = ModelCard(
    task=LandmarksTask(output="y", coordinate_scale=8.0),
    shapes={"x": (1, 3, 8, 8)},
    values={"rate": 16000.0},
    state={"h": "h_out"},
)


def test_a_card_survives_the_file(conv_model: Path) -> None:
    assert card_of(load_onnx(conv_model)) is None
    store(conv_model, CARD)
    back = card_of(load_onnx(conv_model))
    assert back == CARD and isinstance(back.task, LandmarksTask)
    assert back.bound == "nme<=0.01" and ModelCard().bound == "snr>=30"
    assert isinstance(ModelCard().task_or_generic(), GenericTask)


def test_a_damaged_card_is_named(conv_model: Path) -> None:
    model = onnx.load(str(conv_model))
    onnx.helper.set_model_props(model, {CARD_KEY: '{"task": {"kind": "telepathy"}}'})
    onnx.save(model, str(conv_model))
    with pytest.raises(ConfigError, match=r"edgeopt\.card: bad model card: task"):
        card_of(load_onnx(conv_model))
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_card("{task")


def test_a_users_yaml_card_overrides_the_stored_one(conv_model: Path, tmp_path: Path) -> None:
    store(conv_model, CARD)
    yaml = tmp_path / "card.yaml"
    yaml.write_text(
        "mean: [127.5, 127.5, 127.5]\nstd: 127.5\n"
        "task: {kind: detection, decoder: yolo, boxes_output: y, input_size: [8, 8]}\n"
    )
    fields = card_fields(yaml)
    assert set(fields) == {"task"}  # the interface fields are load_card's
    assert load_card(yaml)["mean"] == (127.5, 127.5, 127.5) and "task" not in load_card(yaml)
    merged = resolve_card(load_onnx(conv_model), fields)
    assert isinstance(merged.task, DetectionTask) and merged.task.decoder == "yolo"
    assert merged.shapes == CARD.shapes and merged.state == CARD.state  # kept from the file
    yaml.write_text("task: {kind: detection}\n")
    with pytest.raises(ConfigError, match=r"card\.yaml: bad model card: task\.detection"):
        card_fields(yaml)
