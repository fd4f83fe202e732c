# Boucle firmware: pure logic importable on CPython and MicroPython.
# Hardware modules (machine, network, umqtt) live apart, under boucle_fw.hw.
