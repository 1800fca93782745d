"""Board and element detection, with the device-tree and Tegra files written to a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtsp2jpg.capture.board import _gi_finder, _inspect_finder, available_elements, detect_board


@pytest.mark.parametrize(("model", "tegra", "kind"), [
    ("Raspberry Pi 4 Model B Rev 1.4", "", "rpi4"),
    ("Raspberry Pi 400 Rev 1.0", "", "rpi4"),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "", "rpi4"),
    ("Raspberry Pi 5 Model B Rev 1.0", "", "rpi5"),
    ("Raspberry Pi Compute Module 5 Rev 1.0", "", "rpi5"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "", "rpi"),
    ("NVIDIA Jetson Nano Developer Kit", "", "jetson"),
    ("", "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64", "jetson"),
    ("NVIDIA Orin Nano Developer Kit", "# R36 (release), REVISION: 3.0", "jetson"),
    ("", "", "generic"),
    ("Pine64 RockPro64 v2.1", "", "generic"),
])
def test_detect_board(tmp_path: Path, model: str, tegra: str, kind: str) -> None:
    model_path, tegra_path = tmp_path / "model", tmp_path / "nv_tegra_release"
    if model:
        model_path.write_bytes(model.encode() + b"\x00")  # the device tree NUL-terminates
    if tegra:
        tegra_path.write_text(tegra + "\n")
    board = detect_board(model_path, tegra_path)
    assert board.kind == kind
    assert board.model == (model or tegra)


def test_available_elements_uses_the_finder() -> None:
    assert available_elements(["a", "b", "c"], finder=lambda n: n != "b") == frozenset({"a", "c"})


@pytest.mark.parametrize("make", [_gi_finder, _inspect_finder])
def test_real_registry_lookups_agree(make) -> None:
    find = make()
    if find is None:
        pytest.skip("this lookup is not available here")
    assert find("avdec_h264") and find("rtspsrc")
    assert not find("nvv4l2decoder_does_not_exist")
