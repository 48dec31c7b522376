#!/usr/bin/env bash
# Entrypoint of the Label Studio stand-in image: what the official one does before the app starts that the stack
# depends on (wait for PostgreSQL when POSTGRE_HOST is set), then run the command. Its production commands:
#   label-studio-uwsgi   migrations and the admin user (label-studio init), then the app under gunicorn on :8000
#   nginx                static files from the package, the rest passed to the app ($LS_APP_HOST:8000)
set -euo pipefail

if [[ -n ${POSTGRE_HOST:-} && ${1:-} != nginx ]]; then
  echo "=> Waiting for PostgreSQL at ${POSTGRE_HOST}:${POSTGRE_PORT:-5432}..." >&2
  until python3 - <<'PY'
import os, sys
import psycopg
try:
    psycopg.connect(dbname=os.getenv("POSTGRE_NAME", "root"), user=os.getenv("POSTGRE_USER"),
                    password=os.getenv("POSTGRE_PASSWORD"), host=os.getenv("POSTGRE_HOST"),
                    port=os.getenv("POSTGRE_PORT", "5432"), connect_timeout=3).close()
except psycopg.OperationalError:
    sys.exit(1)
PY
  do
    sleep 1
  done
  echo "=> PostgreSQL is up." >&2
fi

package=$(python3 -c 'import label_studio, os; print(os.path.dirname(label_studio.__file__))')

case ${1:-} in
  label-studio-uwsgi)
    label-studio init --quiet --no-browser --enable-legacy-api-token
    workers=${LS_WEB_WORKERS:-$(( $(nproc) + 1 ))}
    echo "=> Label Studio under gunicorn, $workers workers, on :8000" >&2
    cd "$package"
    exec gunicorn core.wsgi:application --bind 0.0.0.0:8000 --workers "$workers" --timeout 3600 \
      --graceful-timeout 20 --error-logfile - --worker-tmp-dir /dev/shm \
      --env DJANGO_SETTINGS_MODULE=core.settings.label_studio
    ;;
  nginx)
    state=/tmp/nginx
    mkdir -p "$state"/tmp
    react=$(cd "$package/../web/dist/apps/labelstudio" 2>/dev/null && pwd || echo "$package/core/static_build")
    # the app's address is looked up per request (Docker's DNS), so nginx starts before the app exists
    proxy="set \$app http://${LS_APP_HOST:-app}:8000; proxy_pass \$app; proxy_set_header Host \$http_host;
           proxy_set_header X-Forwarded-For \$remote_addr; proxy_set_header X-Forwarded-Proto \$scheme;
           proxy_read_timeout 3600s; proxy_send_timeout 3600s;"
    cat > "$state/nginx.conf" <<CONF
worker_processes auto;
pid $state/nginx.pid;
error_log stderr warn;
daemon off;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    server_tokens off;
    sendfile on;
    client_max_body_size 1g;
    client_body_temp_path $state/tmp/body;
    proxy_temp_path $state/tmp/proxy;
    fastcgi_temp_path $state/tmp/fastcgi;
    uwsgi_temp_path $state/tmp/uwsgi;
    scgi_temp_path $state/tmp/scgi;
    resolver 127.0.0.11 valid=10s;
    server {
        listen ${NGINX_PORT:-8085};
        location = /static/fonts/roboto/roboto.css { $proxy }
        location /static/ { alias $package/core/static_build/; expires 7d; try_files \$uri @app; }
        location /react-app/ { alias $react/; try_files \$uri @app; }
        location / { $proxy }
        location @app { $proxy }
    }
}
CONF
    echo "=> nginx on :${NGINX_PORT:-8085}, the app at ${LS_APP_HOST:-app}:8000" >&2
    exec nginx -e stderr -c "$state/nginx.conf"
    ;;
esac

exec "$@"
