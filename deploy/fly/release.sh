#!/usr/bin/env bash
# The steps of .github/workflows/deploy.yml, one subcommand each, so the workflow stays short
# and every step can be run (and read) outside GitHub. docs/deployment.md describes the flow.
#
#   release.sh setup                   flyctl $FLYCTL_VERSION, checked against $FLYCTL_SHA256,
#                                      and the smoke suite's dependencies (hash-locked)
#   release.sh verify IMAGE            refuse IMAGE unless it is this repository's image by
#                                      digest with a build-provenance attestation from image.yml
#   release.sh last-good ENV           prints image=<repo@digest> that ENV last passed with
#                                      (registry tag ENV), or image= when there is none yet
#   release.sh deploy ENV IMAGE        release IMAGE (by digest) with deploy/fly/ENV.toml;
#                                      the release command migrates the database first
#   release.sh smoke ENV               the smoke suite against $SMOKE_BASE_URL (tests/smoke), as
#                                      an admin whose password is made for this run only
#   release.sh rollback ENV IMAGE      redeploy IMAGE without migrating, then wait for /readyz
#   release.sh mark-good ENV IMAGE     move the registry tag ENV to IMAGE
#
# Needs: GITHUB_REPOSITORY (owner/name: only ghcr.io/<owner>/<name>@sha256:… is deployed);
# docker logged in to ghcr.io; GH_TOKEN for verify; FLY_API_TOKEN for deploy, smoke and
# rollback. key=value lines go to $GITHUB_OUTPUT when it is set (standard output otherwise).
#
# Sourcing the file defines the functions without running anything (tests/unit/
# test_deployment_files.py calls require_own_image and the smoke admin's steps that way).
set -euo pipefail

die() {
    echo "::error::$*" >&2
    exit 1
}

output() { echo "$1" >>"${GITHUB_OUTPUT:-/dev/stdout}"; }

# require_own_image IMAGE: this repository's image on GitHub's registry, named by digest.
# Anything else is refused before it reaches a registry or Fly: another repository's or
# registry's image (whoever can start the workflow could otherwise deploy any image they
# like), a tag (it can move between staging and production), a malformed digest.
require_own_image() {
    local image=$1 repository expected name digest
    repository=${GITHUB_REPOSITORY:-}
    [[ "$repository" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] ||
        die "GITHUB_REPOSITORY must be this repository's owner/name (set by GitHub Actions), got '$repository'"
    expected="ghcr.io/${repository,,}"
    if [[ "$image" != *@sha256:* ]]; then
        die "image must be named by digest, ${expected}@sha256:<64 hex digits>, got '$image' (a tag can move)"
    fi
    name=${image%@sha256:*}
    digest=${image##*@sha256:}
    [[ "$name" == "$expected" ]] ||
        die "only this repository's images are deployed: expected ${expected}@sha256:<digest>, got '$image'"
    [[ "$digest" =~ ^[0-9a-f]{64}$ ]] ||
        die "the digest of '$image' is not 64 lower-case hex digits"
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

# --- flyctl, pinned and checked ------------------------------------------------------------

install_flyctl() {
    local version=${FLYCTL_VERSION:-} sha256=${FLYCTL_SHA256:-} archive directory
    [[ -n "$version" ]] || die "FLYCTL_VERSION is not set"
    [[ "$sha256" =~ ^[0-9a-f]{64}$ ]] ||
        die "FLYCTL_SHA256 must be the SHA-256 of flyctl_${version}_Linux_x86_64.tar.gz (64 hex digits)"
    archive="flyctl_${version}_Linux_x86_64.tar.gz"
    directory="${RUNNER_TEMP:-/tmp}/flyctl-${version}"
    mkdir -p "$directory"
    curl -fsSL --retry 3 -o "$directory/$archive" \
        "https://github.com/superfly/flyctl/releases/download/v${version}/${archive}"
    # Nothing from the download runs before its checksum matched the pinned one.
    echo "${sha256}  ${directory}/${archive}" | sha256sum --check --strict
    tar -xzf "$directory/$archive" -C "$directory" flyctl
    rm -f "$directory/$archive"
    echo "$directory" >>"${GITHUB_PATH:-/dev/null}"
    "$directory/flyctl" version
}

# --- build provenance ----------------------------------------------------------------------

# verify_provenance IMAGE: the image carries a SLSA provenance attestation signed for this
# repository's image.yml, built from main on a GitHub-hosted runner.
verify_provenance() {
    local image=$1
    require_own_image "$image"
    [[ -n "${GH_TOKEN:-}" ]] || die "GH_TOKEN is not set (gh reads the attestations with it)"
    gh attestation verify "oci://${image}" \
        --repo "$GITHUB_REPOSITORY" \
        --signer-workflow "${GITHUB_REPOSITORY}/.github/workflows/image.yml" \
        --source-ref refs/heads/main \
        --deny-self-hosted-runners
}

# --- the smoke suite's admin, made for one run -----------------------------------------------

new_password() { head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }

# set_admin_password APP EMAIL: make EMAIL an active admin on APP whose password is the line
# on standard input (`users create-admin --reset` creates the account or resets it and ends its
# sessions). The password travels over the SSH session's standard input: never in an argument,
# the process list, the workflow's environment or a log.
set_admin_password() {
    local app=$1 email=$2
    # shellcheck disable=SC2016 # $0 and $ADMIN_PASSWORD are expanded on the machine
    flyctl ssh console --app "$app" --command \
        "sh -c 'IFS= read -r ADMIN_PASSWORD && export ADMIN_PASSWORD && exec flask --app app users create-admin --reset --name \"Smoke suite\" \"\$0\"' $email"
}

# smoke_admin_email: the one smoke admin account of an environment (its password changes every
# run); SMOKE_EMAIL_DOMAIN is checked, since the address becomes part of a remote command.
smoke_admin_email() {
    local domain=${SMOKE_EMAIL_DOMAIN:-example.com}
    [[ "$domain" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]] ||
        die "SMOKE_EMAIL_DOMAIN must be a plain lower-case domain name, got '$domain'"
    echo "smoke-admin@${domain}"
}

# run_smoke ENV: create (or reset) the smoke admin with a password made here, run the suite,
# and whatever its outcome replace that password by another random one nobody keeps, which
# also ends every session of the account. There is no standing smoke admin password anywhere.
run_smoke() {
    local env=$1 config app email password status=0
    [[ -n "${SMOKE_BASE_URL:-}" ]] || die "SMOKE_BASE_URL is not set (the environment's BASE_URL)"
    config=$(config_for "$env")
    app=$(app_of "$config")
    [[ -n "$app" ]] || die "$config names no app"
    email=$(smoke_admin_email)
    password=$(new_password)
    [[ ${#password} -ge 40 ]] || die "could not make a random password"
    [[ -z "${GITHUB_ACTIONS:-}" ]] || echo "::add-mask::${password}"
    echo "creating the smoke admin $email on $app for this run"
    printf '%s\n' "$password" | set_admin_password "$app" "$email" >/dev/null ||
        die "could not create the smoke admin on $app (flyctl ssh console)"
    SMOKE_ADMIN_EMAIL=$email SMOKE_ADMIN_PASSWORD=$password \
        python -m pytest tests/smoke --base-url "$SMOKE_BASE_URL" || status=$?
    password=""
    echo "retiring the smoke admin $email: its password is replaced and its sessions end"
    if ! new_password | set_admin_password "$app" "$email" >/dev/null; then
        echo "::error::could not retire the smoke admin $email on $app: run" \
            "'flask --app app users create-admin --reset $email' on it with a random password" >&2
        status=1
    fi
    return "$status"
}

main() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../.."
    local command=${1:-} env image
    shift || true
    case "$command" in
    setup)
        install_flyctl
        python -m pip install --quiet --require-hashes -r requirements-dev.txt
        ;;
    verify)
        image=${1:?usage: release.sh verify IMAGE}
        verify_provenance "$image"
        ;;
    last-good)
        env=$1
        # the repository of the image being deployed (deploy.yml sets IMAGE for every step)
        image=${IMAGE:?IMAGE is not set}
        require_own_image "$image"
        local repository=${image%@*} digest
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
        require_own_image "$image"
        local config
        config=$(config_for "$env") # an assignment, so that a failure stops the script (set -e)
        deploy_with "$config" "$image"
        ;;
    smoke)
        run_smoke "${1:?usage: release.sh smoke ENV}"
        ;;
    rollback)
        env=$1 image=$2
        require_own_image "$image"
        # Without the release command: the database stays at the newer schema, which the previous
        # release must accept (migrations are expand-then-contract, docs/deployment.md).
        local source_config config
        source_config=$(config_for "$env")
        config="${RUNNER_TEMP:-/tmp}/fly-$env-rollback.toml"
        sed '/^[[:space:]]*release_command[[:space:]]*=/d' "$source_config" >"$config"
        deploy_with "$config" "$image"
        wait_ready "${BASE_URL:?BASE_URL is not set}"
        echo "::error::$env was rolled back to $image"
        ;;
    mark-good)
        env=$1 image=$2
        require_own_image "$image"
        docker buildx imagetools create --tag "${image%@*}:$env" "$image"
        ;;
    *)
        die "usage: release.sh setup | verify IMAGE | last-good ENV | deploy ENV IMAGE | smoke ENV | rollback ENV IMAGE | mark-good ENV IMAGE"
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
