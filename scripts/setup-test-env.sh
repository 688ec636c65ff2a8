#!/usr/bin/env bash
# Install everything the test suite needs, on a new machine or an old one (idempotent):
# system packages, envcheck with TensorFlow, a running Docker daemon, the extra interpreters the
# host-target tests use, and the fixture images (built without any registry).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${ENVCHECK_FIXTURE_CACHE:-$HOME/.cache/envcheck-fixtures}"
export ENVCHECK_FIXTURE_CACHE="$CACHE"
log() { printf '[setup] %s\n' "$*"; }

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v gcc >/dev/null || need_apt+=(gcc)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v chromium >/dev/null || need_apt+=(chromium)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)  # the ssh:// transport's tests run a real sshd
command -v podman >/dev/null || need_apt+=(podman)  # Podman's Docker-compatible API is a fleet endpoint
command -v catatonit >/dev/null || need_apt+=(catatonit)  # podman kube play's pause image (tests/kit/test_k8s.py)
command -v skopeo >/dev/null || need_apt+=(skopeo)  # --verify-signature (tests/targets/test_signature.py)
command -v gpg >/dev/null || need_apt+=(gnupg)  # its test keys
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)  # arm64 fixture images, run emulated
command -v update-binfmts >/dev/null || need_apt+=(binfmt-support)  # registers qemu with binfmt_misc
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)  # round robin before two model servers
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# arm64 images run through qemu-user-static, registered with binfmt_misc (flag F: usable inside containers).
# Where the kernel refuses (no privilege), the arm64 fixtures are left out and their tests fail naming why.
if [ ! -f /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || log "WARNING: cannot mount binfmt_misc"
fi
if [ -f /proc/sys/fs/binfmt_misc/register ] && [ ! -f /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || log "WARNING: cannot register qemu-aarch64 with binfmt_misc"
fi

log "pip install -e .[tf,test,docs,grpc]"
python3 -m pip install --quiet --disable-pip-version-check -e '.[tf,test,docs,grpc]'

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (dockerd >/var/log/envcheck-dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/envcheck-dockerd.log"; exit 1; }
fi

# Interpreters for python:PATH targets: an older TensorFlow, and none at all.
mkdir -p "$CACHE"
if [ ! -x "$CACHE/venv-tf-older/bin/python" ] || ! "$CACHE/venv-tf-older/bin/python" -c 'import tensorflow' 2>/dev/null; then
  log "venv with tensorflow-cpu 2.20.0"
  rm -rf "$CACHE/venv-tf-older"
  python3 -m venv "$CACHE/venv-tf-older"
  "$CACHE/venv-tf-older/bin/pip" install --quiet --disable-pip-version-check tensorflow-cpu==2.20.0
fi
[ -x "$CACHE/venv-no-tf/bin/python" ] || { log "venv without TensorFlow"; python3 -m venv --without-pip "$CACHE/venv-no-tf"; }
# The serving-endpoint tests' model server (kserve, in a venv of its own) and the load balancer in front of two.
bash scripts/setup-endpoint-env.sh

log "fixture images"
# All of fixtures/images/*, and envcheck-fixture/envcheck: envcheck itself from docker/Dockerfile, built
# from this checkout's wheel (rebuilt only when the wheel changes; tests/ci/test_container_image.py).
python3 fixtures/images/build.py
log "ready"
