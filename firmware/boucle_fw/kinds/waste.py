# Waste: bins, weighed by a load cell or watched by a distance sensor. No counter.

KIND = "waste"

FIELDS = (
    ("weight_g", None, "g", -100000, 10000000, "Net weight on the scale (tare removed), g.", "weight",
     "measurement"),
    ("fill_pct", 1, "%", 0, 100, "Fill level, % of container height.", None, "measurement"),
    ("temp_c", 1, "\u00b0C", -60, 125, "Temperature, \u00b0C.", "temperature", "measurement"),
)

COUNTER = None
METER = None  # bins: deposits and emptyings from the weight or fill series (boucle.rollup)

# Between two reports a bin's sensor is read every WATCH_S seconds, and a reading that
# shows an emptying is reported at once, with the last one before it: the server then
# sees the top of the bin before the collection (the deposits since the last report
# would otherwise vanish in the drop) and the emptying when it happens.
WATCH_S = 60

# What an emptying is, per level field: (band, near empty, near-empty share of the level
# before). The server's rule with the same numbers (boucle.accounting: NOISE_G,
# NEAR_TARE_G, NEAR_TARE_FRACTION; FILL_NOISE_PCT, FILL_NEAR_EMPTY_PCT,
# FILL_NEAR_EMPTY_FRACTION).
EMPTYING = {"weight_g": (100.0, 500.0, 0.10), "fill_pct": (5.0, 15.0, 0.25)}


def account(counter, fields, dt_ms):
    pass


def emptied(before, after):
    """Whether going from reading `before` to `after` empties the bin: a level field falls
    by its band or more, to at most max(near empty, share x the level before)."""
    for name, (band, near, share) in EMPTYING.items():
        if name in before and name in after:
            top, level = before[name], after[name]
            if top - level >= band and level <= max(near, share * top):
                return True
    return False
