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


def account(counter, fields, dt_ms):
    pass
