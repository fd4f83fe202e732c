"""Alert messages in each language the dashboard speaks, from an alert's rule, subject and detail.

One template per (rule, variant) and language; the rules (cloud.alerts.rules) write the
English one into `message`, and every alert the API lists or delivers carries
`messages: {en, fr}` rendered from its stored detail (docs/api.md "Alerts"). Times stay
ISO 8601 UTC in every language, as in the detail. `in_each_language` fills one template
in every language; device health's reasons to visit use it too (cloud.device_health).
"""

from __future__ import annotations

LANGS = ("en", "fr")

TEMPLATES: dict[str, dict[str, str]] = {
    "bin_overflow": {
        "en": "{subject} is forecast to pass {threshold_pct:g}% at {reaches_threshold}, "
              "before its next collection at {next_round}",
        "fr": "{subject} devrait dépasser {threshold_pct:g} % le {reaches_threshold}, "
              "avant sa prochaine collecte le {next_round}",
    },
    "device_silent": {
        "en": "{subject} silent since {last_reading} (more than {silent_intervals} intervals of {interval_s} s)",
        "fr": "{subject} muet depuis le {last_reading} (plus de {silent_intervals} intervalles de {interval_s} s)",
    },
    "device_silent.never": {
        "en": "{subject} never sent a reading (more than {silent_intervals} intervals of {interval_s} s)",
        "fr": "{subject} n'a jamais envoyé de mesure (plus de {silent_intervals} intervalles de {interval_s} s)",
    },
    "data_gap": {
        "en": "{subject} has a {gap_min} min gap from {from} (about {missing_readings} readings missing)",
        "fr": "{subject} a un trou de {gap_min} min à partir du {from} (environ {missing_readings} mesures "
              "manquantes)",
    },
    "base_load_high": {
        "en": "{subject}: night base load {base_load_w:.0f} W on {night}, usually {usual_w:.0f} W",
        "fr": "{subject} : talon de nuit de {base_load_w:.0f} W la nuit du {night}, d'habitude {usual_w:.0f} W",
    },
    "water_leak": {
        "en": "{subject}: water flowed every night for {nights_in_a_row} nights (until {until}): a leak?",
        "fr": "{subject} : l'eau a coulé chaque nuit pendant {nights_in_a_row} nuits (jusqu'au {until}) : "
              "une fuite ?",
    },
}


def _template(rule: str, detail: dict) -> dict[str, str] | None:
    if rule == "device_silent" and detail.get("last_reading") is None:
        return TEMPLATES["device_silent.never"]
    return TEMPLATES.get(rule)


def in_each_language(template: dict[str, str], values: dict) -> dict[str, str]:
    """{lang: `template`'s text in lang filled from `values`} for every language; KeyError
    when `values` lacks a field the template names."""
    return {lang: template[lang].format_map(values) for lang in LANGS}


def message(rule: str, subject: str, detail: dict, lang: str = "en") -> str:
    """The alert's message in `lang`; KeyError when the detail lacks a field its template names."""
    return _template(rule, detail)[lang].format_map({**detail, "subject": subject})


def messages(rule: str, subject: str, detail: dict, fallback: str) -> dict[str, str]:
    """{lang: message} for every language; `fallback` (the stored message) for an alert
    whose detail cannot fill the template (one kept by an older version)."""
    try:
        return in_each_language(_template(rule, detail), {**detail, "subject": subject})
    except (KeyError, TypeError, ValueError):
        return dict.fromkeys(LANGS, fallback)
