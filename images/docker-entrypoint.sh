#!/bin/sh
# Install the drop-in plugins mounted at $EKUIPER_DROPIN_PLUGINS, then run the command.
set -e
# dropin.py exits 0 whatever a folder holds; should Python itself fail, eKuiper starts anyway.
/opt/venv/bin/python /usr/local/lib/ekuiper/dropin.py \
  || echo "dropin: exited with status $?; starting without checking the drop-in plugins" >&2
exec "$@"
