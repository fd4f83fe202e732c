# Energy: electricity meters. The device keeps a cumulative integer Wh counter.

KIND = "energy"

FIELDS = (
    ("energy_wh", None, "Wh", 0, 1000000000000, "Cumulative energy counter, Wh.", "energy", "total_increasing"),
    ("power_w", 1, "W", -1000000, 1000000, "Active power, W.", "power", "measurement"),
    ("voltage_v", 1, "V", 0, 1000, "RMS voltage, V.", "voltage", "measurement"),
    ("current_a", 3, "A", 0, 1000, "RMS current, A.", "current", "measurement"),
    ("power_factor", 2, None, -1, 1, "Power factor.", "power_factor", "measurement"),
)

# The counter the device keeps and sends: (reading field, config section and its keys
# (section, units between NVS writes, default; seconds between writes, default), NVS key).
COUNTER = ("energy_wh", ("energy", "persist_wh", 100, "persist_s", 900), "energy")

# How the servers account it (boucle.rollup): a meter whose counter's increments accrue
# per interval in thousandths (mWh); a delta above the rated rate x dt is rejected. The
# rate is the registry's `rated` field x `per_rated_hour` counter units an hour, else the
# bound of `rate_field` x `per_rate_hour`.
METER = {"counter": "energy_wh", "rated": "rated_power_w", "per_rated_hour": 1,
         "rate_field": "power_w", "per_rate_hour": 1, "unit": "Wh"}


def account(counter, fields, dt_ms):
    """Add what a sensor's read() says to the EnergyCounter: a meter's own delta, S0
    pulses, or power integrated over the time since the last reading."""
    if "energy_delta_wh" in fields:
        counter.total_wh += fields["energy_delta_wh"]
    elif "pulses" in fields:
        counter.add_pulses(fields["pulses"], fields["pulses_per_kwh"])
    elif "power_w" in fields:
        counter.add_power(fields["power_w"], dt_ms)
