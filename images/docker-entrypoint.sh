#!/bin/sh
# Install the drop-in plugins mounted at $EKUIPER_DROPIN_PLUGINS, then run the command.
set -e
/opt/venv/bin/python /usr/local/lib/ekuiper/dropin.py
exec "$@"
