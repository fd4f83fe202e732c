# Water: water meters with a pulse output. The device keeps a cumulative integer litre
# counter, reset-aware on the servers like energy_wh.

KIND = "water"

FIELDS = (
    ("water_l", None, "L", 0, 1000000000000, "Cumulative water counter, L.", "water", "total_increasing"),
    ("flow_lpm", 2, "L/min", 0, 10000, "Water flow, L/min.", "volume_flow_rate", "measurement"),
)

COUNTER = ("water_l", ("water", "persist_l", 50, "persist_s", 900), "water")

# Litres accrue per interval in mL; a registry rated_flow_m3_h (the meter's Q3, on its
# plate) bounds a delta, else the flow field's bound (10,000 L/min).
METER = {"counter": "water_l", "rated": "rated_flow_m3_h", "per_rated_hour": 1000,
         "rate_field": "flow_lpm", "per_rate_hour": 60, "unit": "L"}


def account(counter, fields, dt_ms):
    """Add a pulse input's pulses (each ml_per_pulse mL) to the litre counter."""
    if "pulses" in fields:
        counter.add_pulses_ml(fields["pulses"], fields["ml_per_pulse"])
