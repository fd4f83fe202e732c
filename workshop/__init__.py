"""Workshop tool: flash, provision, verify and calibrate ESP32 sensors at the bench.

`boucle flash` (workshop.flash) and `boucle calibrate` (workshop.calibrate) are the
commands; each stage of the flow is a module of its own (docs/workshop.md).
"""
