# Thin hardware layer: the only modules that import machine, network, esp32 and umqtt.
