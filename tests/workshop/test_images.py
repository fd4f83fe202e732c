"""MicroPython images: offsets per chip, cache lookup, checksum, wrong chip, clear messages."""

from __future__ import annotations

import hashlib

import pytest

from tests.workshop.conftest import fake_image
from workshop import images


@pytest.mark.parametrize(("chip", "offset"), [("ESP32", 0x1000), ("ESP32-S2", 0x1000), ("ESP32-S3", 0),
                                              ("ESP32-C3", 0), ("ESP32-C6", 0)])
def test_offsets(chip, offset):
    assert images.family_of(chip).offset == offset


def test_unsupported_chip_is_a_wrong_chip_error():
    with pytest.raises(images.ImageError, match="wrong chip: this board is an ESP8266"):
        images.family_of("ESP8266")


def test_newest_image_of_the_family_is_found(image_dir):
    s3 = images.family_of("ESP32-S3")
    older = fake_image(s3, 1024)
    (image_dir / "ESP32_GENERIC_S3-20250101-v1.25.0.bin").write_bytes(older)
    with (image_dir / images.MANIFEST).open("a") as f:
        f.write(f"{hashlib.sha256(older).hexdigest()} *ESP32_GENERIC_S3-20250101-v1.25.0.bin\n")
    image = images.find_image(s3, image_dir)
    assert image.path.name == "ESP32_GENERIC_S3-20260829-v1.29.0.bin"
    assert images.find_image(images.family_of("ESP32"), image_dir).path.name.startswith("ESP32_GENERIC-")


def test_missing_image_says_which_file_and_where(tmp_path):
    folder = tmp_path / "empty"
    with pytest.raises(images.ImageError) as err:
        images.find_image(images.family_of("ESP32-C3"), folder)
    message = str(err.value)
    assert "image missing" in message and str(folder) in message
    assert "ESP32_GENERIC_C3" in message and "micropython.org/download/ESP32_GENERIC_C3/" in message
    assert "v1.29.0" in message and "sha256sum" in message


def test_image_without_checksum_line_is_refused(tmp_path):
    family = images.family_of("ESP32")
    (tmp_path / "ESP32_GENERIC-20260829-v1.29.0.bin").write_bytes(fake_image(family))
    with pytest.raises(images.ImageError, match="has no checksum for it"):
        images.find_image(family, tmp_path)


def test_corrupt_image_is_refused(image_dir):
    family = images.family_of("ESP32-S3")
    path = image_dir / "ESP32_GENERIC_S3-20260829-v1.29.0.bin"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(images.ImageError, match="does not match its SHA-256"):
        images.find_image(family, image_dir)


def test_image_for_another_chip_is_refused(tmp_path):
    data = fake_image(images.family_of("ESP32-C3"))
    path = tmp_path / "some.bin"
    path.write_bytes(data)
    with pytest.raises(images.ImageError, match="wrong chip: some.bin is built for ESP32-C3 but the board is an ESP32-S3"):
        images.load_image(path, hashlib.sha256(data).hexdigest(), images.family_of("ESP32-S3"))


def test_explicit_file_needs_a_checksum(tmp_path):
    path = tmp_path / "mp.bin"
    path.write_bytes(fake_image(images.family_of("ESP32")))
    with pytest.raises(images.ImageError, match="no SHA-256 for"):
        images.load_image(path, None, images.family_of("ESP32"))
