# Runs after boot.py. Ctrl-C at the REPL within the first seconds stops it for maintenance.
from boucle_fw import app

app.run()
