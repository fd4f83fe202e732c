# The firmware descriptor of the throwaway `gas` kind (as boucle_fw/kinds/water.py).

KIND = "gas"

FIELDS = (
    ("gas_dm3", None, "dm³", 0, 1000000000000, "Cumulative gas counter, dm³.", "gas", "total_increasing"),
    ("gas_flow_dm3h", 1, "dm³/h", 0, 100000, "Gas flow, dm³/h.", None, "measurement"),
)

COUNTER = ("gas_dm3", ("gas", "persist_dm3", 100, "persist_s", 900), "gas")

METER = {"counter": "gas_dm3", "rated": "rated_gas_m3_h", "per_rated_hour": 1000,
         "rate_field": "gas_flow_dm3h", "per_rate_hour": 1, "unit": "dm³"}


def account(counter, fields, dt_ms):
    if "pulses" in fields:
        counter.add_pulses_ml(fields["pulses"], fields["ml_per_pulse"])
