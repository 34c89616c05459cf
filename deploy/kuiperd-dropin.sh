#!/bin/sh
# Stands in for kuiperd at /kuiper/bin/kuiperd in the derived image (deploy/Dockerfile.plugins).
# eKuiper's Helm chart starts the container with its own command, which ends in
# `/kuiper/bin/kuiperd` and so skips the image's entrypoint; through this file that command
# still installs the plugins baked in at $EKUIPER_DROPIN_PLUGINS before kuiperd starts.
# exec, twice: kuiperd gets this process id, and with it the signals sent to it.
exec /usr/local/bin/docker-entrypoint.sh /kuiper/bin/kuiperd.bin "$@"
