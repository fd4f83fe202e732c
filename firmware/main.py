# Runs after boot.py. Ctrl-C at the REPL within the first seconds stops it for maintenance.
#
# An app that fails (an OTA image that raises at start, a driver that breaks) resets the
# board after a pause instead of leaving it at the REPL: boot.py then counts the boot of
# an unconfirmed app and rolls back after ota.max_boots, which a board sitting at the REPL
# would never do. A config error is not a failure: app.run() prints it and returns.
import sys
import time

try:
    from boucle_fw import app

    app.run()
except Exception as e:
    sys.print_exception(e)
    print("boucle: the app failed; resetting in 10 s (Ctrl-C for the REPL)")
    time.sleep(10)
    import machine

    machine.reset()
