# Config validation: runs on CPython (pytest) and on MicroPython (test_micropython.py).
from boucle_fw import config


def _valid(profile="energy-ct", **over):
    return config.make_config("ecully-fablab-grid", "atelier", "secret", "broker.local", 8883,
                              "ecully-fablab-grid", "pw", None, profile, **over)


def test_every_profile_makes_a_valid_config():
    for name in config.profiles():
        cfg = _valid(name)
        assert config.validate(cfg) == [], name
        assert cfg["sensors"] == config.profiles()[name]["sensors"]
        assert cfg["mqtt"]["host"] == "broker.local"


def test_profile_sensors_are_copies():
    cfg = _valid("energy-ct")
    cfg["sensors"][0]["pin"] = 33
    assert config.profiles()["energy-ct"]["sensors"][0]["pin"] == 34


def test_overrides_merge_nested_sections():
    cfg = _valid("waste-ultrasonic", interval_s=600, deep_sleep={"publish_every": 6})
    assert cfg["interval_s"] == 600
    assert cfg["deep_sleep"] == {"enabled": True, "publish_every": 6}


def test_adc2_pin_is_refused_with_the_fix():
    cfg = _valid("energy-ct")
    cfg["sensors"][0]["pin"] = 25
    errors = config.validate(cfg)
    assert len(errors) == 1
    assert errors[0].startswith("sensors[0].pin: ")
    assert "ADC1" in errors[0] and "32-39" in errors[0]


def test_string_pin_names_the_path_and_problem():
    cfg = _valid("energy-ct")
    cfg["sensors"][0]["pin"] = "36"
    errors = config.validate(cfg)
    assert errors == ["sensors[0].pin: '36' is not an int — write the GPIO number without quotes, an ADC1 pin (32-39)"]


def test_input_only_pin_cannot_drive_a_trigger():
    cfg = _valid("waste-ultrasonic")
    cfg["sensors"][0]["trigger"] = 35
    errors = config.validate(cfg)
    assert len(errors) == 1 and "input only" in errors[0] and errors[0].startswith("sensors[0].trigger")


def test_username_must_be_device_id():
    cfg = _valid()
    cfg["mqtt"]["username"] = "someone-else"
    assert config.validate(cfg)[0].startswith("mqtt.username")


def test_username_needs_a_password():
    cfg = _valid()
    del cfg["mqtt"]["password"]
    assert config.validate(cfg)[0].startswith("mqtt.password: missing")


def test_make_config_refuses_bad_values():
    assert config.validate({}) != []
    assert _raises_value_error(lambda: _valid("no-such-profile"))
    assert _raises_value_error(lambda: _valid("energy-pzem", interval_s=0))


def test_duplicate_modbus_addresses():
    cfg = _valid("energy-pzem")
    cfg["sensors"][0]["addresses"] = [1, 2, 1]
    errors = config.validate(cfg)
    assert len(errors) == 1 and errors[0].startswith("sensors[0].addresses[2]")


def test_bad_types_everywhere_do_not_crash():
    for bad in (None, [], "x", 3, {"sensors": "x"}, {"wifi": 1, "mqtt": [], "sensors": [1]}):
        assert config.validate(bad) != []


def _raises_value_error(fn):
    try:
        fn()
    except ValueError:
        return True
    return False


def test_a_signing_key_is_64_hex_digits_and_never_echoed():
    key = "0f" * 32
    assert config.validate(_valid(sign_key=key)) == []
    for bad in ("0F" * 32, "0f" * 31, 12, "zz" * 32):
        cfg = _valid()
        cfg["sign_key"] = bad
        errors = config.validate(cfg)
        assert len(errors) == 1 and errors[0].startswith("sign_key: not a device key"), errors
        assert str(bad) not in errors[0]
