# Sensor drivers. Each keeps its arithmetic in plain functions (tested on CPython and
# MicroPython) and touches `machine` only in its constructor and read methods.
