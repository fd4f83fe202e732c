"""The caveats an indicator value can carry, as templates in one place.

The API sends them in English, filled in; the dashboard shows them in the reader's language
by matching these templates (`caveats` in cloud/dashboard/i18n.js holds a French text for
each one, a test checks that none is missing). Placeholders are `{name}`.
"""

NO_READINGS = "no readings in the period"
LOW_COVERAGE = "data coverage {coverage}: below {threshold} of expected readings"
NO_STANDING = "no standing below {threshold} coverage"
NO_FLOOR_AREA = "add floor_area_m2 to the site in the registry"
NO_EXPORT_METER = "estimated: no export meter in the registry"
SENSOR_BINS_ONLY = "only the bins equipped with sensors are counted"
METERED_SITES_ONLY = "only the sites with a water meter are counted"
MEAN_FILL_RATE = "each bin's fill rate is its mean over the period"

TEMPLATES = (NO_READINGS, LOW_COVERAGE, NO_STANDING, NO_FLOOR_AREA, NO_EXPORT_METER, SENSOR_BINS_ONLY,
             METERED_SITES_ONLY, MEAN_FILL_RATE)
