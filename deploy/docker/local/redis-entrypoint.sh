#!/bin/sh
# Entry point of the locally built Redis 7 image (tools/container_images.py), as the official
# redis image behaves: `redis-server ARGS` (the default command) runs as the redis user in
# /data and, given no configuration file, with protected mode off so that other containers
# and published ports may connect. Anything else runs as given.
set -eu

if [ "${1#-}" != "${1:-}" ]; then
    set -- redis-server "$@"
fi
if [ "${1:-}" = redis-server ]; then
    chown redis:redis /data
    case "${2:-}" in
    "" | -*) set -- "$@" --protected-mode no ;;
    esac
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
