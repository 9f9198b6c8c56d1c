#!/usr/bin/env bash
# Writes the secrets docker-compose.yml mounts (deploy/compose/secrets/, git-ignored): random
# values, one file each, generated once and kept (rerun with --force to replace them all,
# which makes the existing Postgres volume's password stale: `docker compose down -v` first).
#
# The files are world-readable (0644) on purpose: compose bind-mounts them into containers
# that run as other users (the app as uid 10001, Prometheus as nobody). Keep the checkout on
# a single-user machine; real environments use their platform's secret store instead
# (docs/deployment.md).
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"
force=${1:-}
mkdir -p "$dir"

random() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }

write() { # write NAME VALUE: unless it exists (or --force)
    local path="$dir/$1"
    if [[ -e "$path" && "$force" != "--force" ]]; then
        echo "kept    $path"
        return
    fi
    printf '%s' "$2" >"$path"
    chmod 0644 "$path"
    echo "wrote   $path"
}

if [[ -e "$dir/postgres_password" && "$force" != "--force" ]]; then
    db_password=$(cat "$dir/postgres_password")
else
    db_password=$(random)
fi
write postgres_password "$db_password"
write database_url "postgresql+psycopg://mastery:${db_password}@postgres:5432/mastery"
write secret_key "$(random)"
write metrics_token "$(random)"
write grafana_admin_password "$(random)"
