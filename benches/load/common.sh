# Shared by benches/load.sh and benches/profile.sh (sourced, not run): tools, builds, the identity
# provider's key and token, and starting/stopping nginx and one lexecon variant on loopback.
# The sourcing script sets ROOT, HERE (benches/load), WORK, THREADS, UP_PORT, PROXY_PORT,
# ADMIN_PORT, an array STARTED (pids stopped by its EXIT trap) and the functions log and die.
# It leaves NGINX, BIN, LOADGEN, TOKEN and the functions below.

# ---------------------------------------------------------------------------------------------
# Tools: wrk and nginx from Debian when missing.
as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}
apt_install() {
    log "installing $* from Debian"
    # Do not let the package start a system nginx on port 80 (no init system here, and none wanted).
    local policy=/usr/sbin/policy-rc.d added=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        added=1
    fi
    local ok=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" ||
        { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "$@"; } || ok=1
    if [[ $added == 1 ]]; then as_root rm -f "$policy"; fi
    return $ok
}
command -v wrk >/dev/null || apt_install wrk || die "cannot install wrk"
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; } || true
if [[ -z $NGINX ]]; then
    apt_install nginx-light || apt_install nginx || die "cannot install nginx"
    NGINX=/usr/sbin/nginx
fi
for tool in curl openssl; do command -v "$tool" >/dev/null || die "$tool is required"; done

# ---------------------------------------------------------------------------------------------
# Build: lexecon (unless LOAD_BIN names a binary) and the phase-2 load generator.
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -n ${LOAD_BIN:-} ]]; then
    BIN=$LOAD_BIN
    log "using lexecon binary $BIN (LOAD_BIN)"
else
    log "building lexecon (release)"
    (cd "$ROOT" && cargo build --release --quiet -p lexecon --bin lexecon)
    BIN=$TARGET_DIR/release/lexecon
fi
[[ -x $BIN ]] || die "no lexecon binary at $BIN"
log "building loadgen (release)"
(cd "$ROOT" && cargo build --release --quiet -p lexecon-loadgen)
LOADGEN=$TARGET_DIR/release/loadgen
[[ -x $LOADGEN ]] || die "no loadgen binary at $LOADGEN"

# ---------------------------------------------------------------------------------------------
# Identity: the identity provider's Ed25519 key pair (openssl), its JWKS, and a token valid for a year
# (no network). `lexecon keys generate` writes PKCS#8 v2 (with the public key), which OpenSSL 3.0's
# `pkeyutl` cannot read, so the IdP key comes from `openssl genpkey`.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
mkdir -p "$WORK/idp"
openssl genpkey -algorithm ed25519 -out "$WORK/idp/idp-ed25519.pem" 2>/dev/null
KID=load-idp-1
JWK_X=$(openssl pkey -in "$WORK/idp/idp-ed25519.pem" -pubout -outform DER | tail -c 32 | b64url)
printf '{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"%s","x":"%s"}]}\n' \
    "$KID" "$JWK_X" >"$WORK/idp/jwks.json"
NOW=$(date +%s)
JWT_HEADER=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"%s"}' "$KID" | b64url)
JWT_CLAIMS=$(printf '{"iss":"https://idp.load.test","aud":"lexecon-load","sub":"load-agent","tenant":"acme","iat":%d,"exp":%d}' \
    "$NOW" "$((NOW + 365 * 24 * 3600))" | b64url)
printf '%s.%s' "$JWT_HEADER" "$JWT_CLAIMS" >"$WORK/jwt-input"
JWT_SIG=$(openssl pkeyutl -sign -inkey "$WORK/idp/idp-ed25519.pem" -rawin -in "$WORK/jwt-input" | b64url)
TOKEN="$JWT_HEADER.$JWT_CLAIMS.$JWT_SIG"

# ---------------------------------------------------------------------------------------------
# Processes.
wait_http() { # url seconds
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.05
    done
    return 1
}

start_nginx() {
    mkdir -p "$WORK/nginx"
    sed -e "s|@PORT@|$UP_PORT|g" -e "s|@DIR@|$WORK/nginx|g" "$HERE/nginx.conf.in" >"$WORK/nginx/nginx.conf"
    "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/nginx-error.log" &
    STARTED+=($!)
    wait_http "http://127.0.0.1:$UP_PORT/" 10 || die "nginx did not start (see $WORK/nginx/nginx-error.log)"
}

LEXECON_PID=
start_lexecon() { # variant mode durability
    local dir=$WORK/$1
    mkdir -p "$dir"
    sed -e "s|@DATA_DIR@|$dir/data|g" -e "s|@PROXY_PORT@|$PROXY_PORT|g" \
        -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" -e "s|@THREADS@|$THREADS|g" \
        -e "s|@UPSTREAM_PORT@|$UP_PORT|g" -e "s|@JWKS@|$WORK/idp/jwks.json|g" \
        -e "s|@MODE@|$2|g" -e "s|@DURABILITY@|$3|g" -e "s|@POLICY@|$HERE/policies/ai.yaml|g" \
        "$HERE/lexecon.yaml.in" >"$dir/lexecon.yaml"
    # benches/profile.sh: an ablation edits the configuration (a sed script), e.g. tokens off.
    if [[ -n ${LEXECON_CONFIG_EDIT:-} ]]; then sed -i -e "$LEXECON_CONFIG_EDIT" "$dir/lexecon.yaml"; fi
    RUST_LOG=warn "$BIN" serve --config "$dir/lexecon.yaml" >"$dir/lexecon.log" 2>&1 &
    LEXECON_PID=$!
    STARTED+=("$LEXECON_PID")
    wait_http "http://127.0.0.1:$ADMIN_PORT/health" 20 || die "lexecon ($1) did not start; log: $(tail -n 20 "$dir/lexecon.log")"
    wait_http "http://127.0.0.1:$PROXY_PORT/" 10 || die "lexecon ($1) proxy port not open"
}

stop_lexecon() {
    [[ -n $LEXECON_PID ]] || return 0
    kill -TERM "$LEXECON_PID" 2>/dev/null || true
    wait "$LEXECON_PID" 2>/dev/null || true
    LEXECON_PID=
}

port_of() { if [[ $1 == direct ]]; then echo "$UP_PORT"; else echo "$PROXY_PORT"; fi; }
