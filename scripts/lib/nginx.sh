# start_nginx NS DIR TEXT [HEALTHZ_STATUS]: starts nginx (daemonized) in network namespace
# NS, answering every request on port 80 (IPv4 and IPv6) with TEXT, and /healthz with HEALTHZ_STATUS
# (default 200); its config, pid file and error log live in DIR.
start_nginx() {
  mkdir -p "$2"
  cat > "$2/nginx.conf" <<NGX
worker_processes 1; daemon on; pid $2/nginx.pid; error_log $2/error.log;
events { worker_connections 512; }
http { access_log off; server { listen 80 backlog=1024; listen [::]:80 backlog=1024; location / { return 200 "$3\n"; }
  location = /healthz { return ${4:-200} "health\n"; } } }
NGX
  ip netns exec "$1" nginx -c "$2/nginx.conf"
}
