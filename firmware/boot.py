# Runs first at every start: picks the app to run (OTA with rollback), see boucle_fw/ota.py.
import sys

try:
    from boucle_fw import config, ota

    try:
        import json
        with open(config.CONFIG_PATH) as f:
            max_boots = json.load(f).get("ota", {}).get("max_boots", 3)
    except Exception:
        max_boots = 3
    app = ota.select_app(max_boots)
    if app:
        # forget the base package so that imports come from the selected app folder
        for name in list(sys.modules):
            if name == "boucle_fw" or name.startswith("boucle_fw."):
                del sys.modules[name]
        sys.path.insert(0, app)
except Exception as e:
    sys.print_exception(e)
