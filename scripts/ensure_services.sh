#!/usr/bin/env bash
# Makes sure Redis (required) and RabbitMQ (the alternate broker) answer on this machine.
# Installs them through apt where they are missing (as root, or with sudo), then starts them.
set -uo pipefail

REDIS_PORT=${REDIS_PORT:-6379}
APT_UPDATED=0

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
  command -v apt-get >/dev/null || { echo "ensure_services: apt-get not found; install $* by hand" >&2; return 1; }
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq && APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

redis_up() { (exec 3<>/dev/tcp/127.0.0.1/"$REDIS_PORT") 2>/dev/null && printf 'PING\r\n' | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT; cat >&3; head -c 5 <&3" 2>/dev/null | grep -q PONG; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server || { echo "Redis is not installed and could not be installed" >&2; exit 1; }
  mkdir -p /tmp/ragline-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp/ragline-redis --logfile /tmp/ragline-redis/redis.log
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { echo "redis-server did not start; see /tmp/ragline-redis/redis.log" >&2; exit 1; }
  echo "ensure_services: started redis-server on 127.0.0.1:$REDIS_PORT"
fi

if ! rabbit_up; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server || echo "ensure_services: RabbitMQ could not be installed; the RabbitMQ broker will be unavailable" >&2
  if command -v rabbitmq-server >/dev/null; then
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 120); do rabbit_up && break; sleep 0.5; done
    rabbit_up && echo "ensure_services: started rabbitmq-server on 127.0.0.1:5672" \
      || echo "ensure_services: rabbitmq-server did not start in 60s; the RabbitMQ broker will be unavailable" >&2
  fi
fi
exit 0
