#!/usr/bin/env bash
# The steps of .github/workflows/deploy.yml, one subcommand each, so the workflow stays short
# and every step can be run (and read) outside GitHub. docs/deployment.md describes the flow.
#
#   release.sh setup                   flyctl ($FLYCTL_VERSION) and the smoke suite's dependencies
#   release.sh last-good ENV           prints image=<repo@digest> that ENV last passed with
#                                      (registry tag ENV), or image= when there is none yet
#   release.sh deploy ENV IMAGE        release IMAGE (by digest) with deploy/fly/ENV.toml;
#                                      the release command migrates the database first
#   release.sh smoke                   the smoke suite against $SMOKE_BASE_URL (tests/smoke)
#   release.sh rollback ENV IMAGE      redeploy IMAGE without migrating, then wait for /readyz
#   release.sh mark-good ENV IMAGE     move the registry tag ENV to IMAGE
#
# Needs: docker logged in to the image's registry; FLY_API_TOKEN for deploy and rollback;
# key=value lines go to $GITHUB_OUTPUT when it is set (standard output otherwise).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

die() {
    echo "::error::$*" >&2
    exit 1
}

output() { echo "$1" >>"${GITHUB_OUTPUT:-/dev/stdout}"; }

# An image must be named by digest: a tag could move between staging and production.
require_digest() {
    [[ "$1" =~ ^[a-z0-9./_-]+(:[0-9]+)?/[a-z0-9./_-]+@sha256:[0-9a-f]{64}$ ]] ||
        die "image must be <registry>/<repository>@sha256:<digest>, got '$1'"
}

config_for() {
    local config="deploy/fly/$1.toml"
    [[ -f "$config" ]] || die "no Fly configuration $config (environments: staging, production)"
    echo "$config"
}

app_of() { sed -n 's/^app = "\(.*\)"$/\1/p' "$1"; }

# deploy_with CONFIG IMAGE: copy IMAGE into the app's Fly registry, then release it there.
deploy_with() {
    local config=$1 image=$2 app target
    app=$(app_of "$config")
    [[ -n "$app" ]] || die "$config names no app"
    target="registry.fly.io/${app}:${image##*@sha256:}"
    flyctl auth docker
    docker pull --quiet "$image"
    docker tag "$image" "$target"
    docker push --quiet "$target"
    # Rolling strategy: machines are replaced one at a time and must pass the /readyz check;
    # flyctl exits non-zero when they do not.
    flyctl deploy --config "$config" --app "$app" --image "$target"
}

# wait_ready URL: poll URL/readyz until it answers 200, for up to 3 minutes.
wait_ready() {
    local deadline=$((SECONDS + 180))
    until curl -fsS --max-time 5 -o /dev/null "$1/readyz"; do
        ((SECONDS < deadline)) || die "$1/readyz did not answer 200 within 180 s"
        sleep 5
    done
    echo "$1/readyz answers 200"
}

command=${1:-}
shift || true
case "$command" in
setup)
    [[ -n "${FLYCTL_VERSION:-}" ]] || die "FLYCTL_VERSION is not set"
    curl -fsSL --retry 3 https://fly.io/install.sh | sh -s "$FLYCTL_VERSION"
    echo "$HOME/.fly/bin" >>"${GITHUB_PATH:-/dev/null}"
    "$HOME/.fly/bin/flyctl" version
    python -m pip install --quiet --require-hashes -r requirements-dev.txt
    ;;
last-good)
    env=$1
    # the repository of the image being deployed (deploy.yml sets IMAGE for every step)
    repository=${IMAGE:?IMAGE is not set}
    repository=${repository%@*}
    if digest=$(docker buildx imagetools inspect "$repository:$env" --format '{{json .Manifest}}' |
        jq -er .digest); then
        output "image=$repository@$digest"
    else
        echo "::warning::no image tagged $env yet: a failure in this run cannot be rolled back"
        output "image="
    fi
    ;;
deploy)
    env=$1 image=$2
    require_digest "$image"
    config=$(config_for "$env") # an assignment, so that a failure stops the script (set -e)
    deploy_with "$config" "$image"
    ;;
smoke)
    [[ -n "${SMOKE_BASE_URL:-}" ]] || die "SMOKE_BASE_URL is not set (the environment's BASE_URL)"
    python -m pytest tests/smoke --base-url "$SMOKE_BASE_URL"
    ;;
rollback)
    env=$1 image=$2
    require_digest "$image"
    # Without the release command: the database stays at the newer schema, which the previous
    # release must accept (migrations are expand-then-contract, docs/deployment.md).
    source_config=$(config_for "$env")
    config="${RUNNER_TEMP:-/tmp}/fly-$env-rollback.toml"
    sed '/^[[:space:]]*release_command[[:space:]]*=/d' "$source_config" >"$config"
    deploy_with "$config" "$image"
    wait_ready "${BASE_URL:?BASE_URL is not set}"
    echo "::error::$env was rolled back to $image"
    ;;
mark-good)
    env=$1 image=$2
    require_digest "$image"
    docker buildx imagetools create --tag "${image%@*}:$env" "$image"
    ;;
*)
    die "usage: release.sh setup | last-good ENV | deploy ENV IMAGE | smoke | rollback ENV IMAGE | mark-good ENV IMAGE"
    ;;
esac
