#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are up; start whichever is down.
# Skips a service whose test URL is set to `off` (see tests/conftest.py).
set -euo pipefail

wait_for() {  # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up" >&2
  return 1
}

if [ "${PERSONAE_TEST_POSTGRES_URL:-}" != "off" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  fi
  wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi

if [ "${PERSONAE_TEST_REDIS_URL:-}" != "off" ]; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    echo "services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  wait_for Redis sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
fi

if [ "${PERSONAE_TEST_AMQP_URL:-}" != "off" ]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "services: starting RabbitMQ"
    rabbitmq-server -detached
  fi
  wait_for RabbitMQ bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
fi
