"""Settings: environment, file, errors that name the variable; the docs stay current."""

import pytest

from boucle.settings import (
    GatewaySettings,
    SettingsError,
    configuration_markdown,
    load_settings,
)
from tests.conftest import REPO


def test_env_overrides_file_overrides_default(tmp_path):
    conf = tmp_path / "gw.toml"
    conf.write_text('mqtt_host = "broker.example"\nmqtt_port = 1884\n')
    s = load_settings(GatewaySettings, {"BOUCLE_CONFIG": str(conf), "BOUCLE_MQTT_PORT": "1885"})
    assert (s.mqtt_host, s.mqtt_port, s.batch_size) == ("broker.example", 1885, 500)


def test_bad_value_names_the_variable_and_hides_secrets():
    with pytest.raises(SettingsError, match="BOUCLE_MQTT_PORT='x': expected a whole number"):
        load_settings(GatewaySettings, {"BOUCLE_MQTT_PORT": "x"})
    s = load_settings(GatewaySettings, {"BOUCLE_MQTT_PASSWORD": "hunter2"})
    assert s.mqtt_password == "hunter2" and "hunter2" not in repr(s)


def test_unknown_key_in_file(tmp_path):
    conf = tmp_path / "gw.toml"
    conf.write_text("mqtt_hots = 'x'\n")
    with pytest.raises(SettingsError, match="unknown setting 'mqtt_hots'"):
        load_settings(GatewaySettings, {"BOUCLE_CONFIG": str(conf)})


def test_configuration_doc_is_current():
    assert (REPO / "docs" / "configuration.md").read_text() == configuration_markdown()
