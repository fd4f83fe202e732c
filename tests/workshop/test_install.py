"""App install: the real firmware compiled by mpy-cross, copied to a fake board, unchanged files skipped."""

from __future__ import annotations

import shutil

import pytest

from tests.workshop.fake_board import FakeBoard
from workshop import install


@pytest.fixture(scope="module")
def app_xtensa():
    return install.app_files("xtensawin")


def test_every_firmware_module_compiles_to_mpy(app_xtensa):
    paths = {f.device_path for f in app_xtensa}
    assert "/lib/boucle_fw/protocol.mpy" in paths and "/lib/boucle_fw/config.mpy" in paths
    for f in app_xtensa:
        if f.device_path.endswith(".mpy"):
            assert f.data[:1] == b"M" and f.data[1] == 6  # .mpy header: 'M', version 6


def test_unchanged_files_are_skipped(app_xtensa):
    board = FakeBoard("/dev/ttyFAKE0")
    first = install.install(board, app_xtensa)
    assert sorted(first.copied) == sorted(f.device_path for f in app_xtensa) and not first.skipped
    assert "/lib/boucle_fw" in board.dirs
    board.writes.clear()
    second = install.install(board, app_xtensa)
    assert second.copied == [] and board.writes == []
    changed = [install.AppFile(app_xtensa[0].device_path, app_xtensa[0].data + b"\0"), *app_xtensa[1:]]
    third = install.install(board, changed)
    assert third.copied == [app_xtensa[0].device_path]


def test_risc_v_chips_get_their_own_build(app_xtensa):
    riscv = {f.device_path: f.sha256 for f in install.app_files("rv32imc")}
    assert riscv.keys() == {f.device_path for f in app_xtensa}


def test_a_module_that_does_not_compile_is_named(tmp_path):
    shutil.copytree(install.FIRMWARE_DIR / "boucle_fw", tmp_path / "boucle_fw")
    (tmp_path / "boucle_fw" / "broken.py").write_text("def f(:\n")
    with pytest.raises(Exception, match=r"mpy-cross could not compile .*broken\.py"):
        install.app_files("xtensawin", tmp_path)
