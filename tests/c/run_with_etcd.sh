#!/bin/sh
# run_with_etcd.sh - start a throw-away etcd (or a small cluster) on free loopback ports, run one
# command against it, stop etcd and remove its data. Used by ctest for tests/c and examples/.
#
#   run_with_etcd.sh [--members N] [--auth] [--jwt] [--token-ttl S] [--quota BYTES] [--max-request-bytes BYTES] [--tls] \
#                    -- COMMAND ...
#
#   --members N    N-member cluster (default 1)
#   --auth         create user root (password "rootpw") and user "reader" (password "readerpw",
#                  read-only on keys under "pub/"), then enable authentication
#   --token-ttl S  simple auth tokens expire after S seconds (etcd --auth-token-ttl)
#   --jwt          JWT auth tokens (RS256, a key pair made with openssl) instead of simple tokens
#   --quota BYTES  etcd's backend space quota (--quota-backend-bytes), to reach NOSPACE quickly
#   --max-request-bytes BYTES
#                  etcd's --max-request-bytes (it also bounds watch fragments); exported to the
#                  command as ETCDC_TEST_MAX_REQUEST_BYTES
#   --tls          generate a CA, a server certificate (IP SAN 127.0.0.1), a client certificate and
#                  a second, unrelated CA with openssl; etcd serves clients over https
#
# The command sees:
#   ETCD_ENDPOINTS          comma-separated host:port list of every member
#   ETCDC_TEST_MEMBER_CTL   script: "$ETCDC_TEST_MEMBER_CTL stop|kill|start|pause|resume|pid I"
#                           (I = 1..N; pause/resume = SIGSTOP/SIGCONT)
#   ETCDC_TEST_CERTS        directory with ca.pem, server.pem, client.pem, client-key.pem,
#                           other-ca.pem (--tls only)
#   ETCDC_TEST_USER / ETCDC_TEST_PASSWORD (--auth only)
#   ETCDC_TEST_WRAP         if set in the caller's environment, prefixed to COMMAND (for example
#                           "valgrind --leak-check=full --error-exitcode=1")
# ETCDFS_ETCD, if set in the caller's environment, is the etcd binary to start (default: etcd
# on PATH); scripts/fetch-etcd.sh provides etcd 3.5 that way (docs/testing.md).
# Data lives under /dev/shm when it exists. The exit status is the command's.
set -eu

members=1
auth=0
token_ttl=""
quota=""
max_request=""
jwt=0
tls=0
while [ $# -gt 0 ]; do
    case "$1" in
    --members) members=$2; shift 2 ;;
    --auth) auth=1; shift ;;
    --token-ttl) token_ttl=$2; shift 2 ;;
    --quota) quota=$2; shift 2 ;;
    --max-request-bytes) max_request=$2; shift 2 ;;
    --jwt) jwt=1; shift ;;
    --tls) tls=1; shift ;;
    --) shift; break ;;
    *) echo "run_with_etcd.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: run_with_etcd.sh [options] -- command..." >&2; exit 2; }

etcd_bin=${ETCDFS_ETCD:-etcd}
command -v "$etcd_bin" >/dev/null || { echo "run_with_etcd.sh: no etcd binary $etcd_bin" >&2; exit 2; }

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/etcdc-test.XXXXXX")

cleanup() {
    for pidf in "$work"/m*.pid; do
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        kill -CONT "$pid" 2>/dev/null || true
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 2 free ports per member: bind port 0 for all of them at once, then release.
ports=$(/usr/bin/python3 - "$members" <<'EOF'
import socket, sys
n = int(sys.argv[1]) * 2
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

scheme=http
if [ "$tls" = 1 ]; then
    scheme=https
    certs="$work/certs"
    mkdir -p "$certs"
    (
        cd "$certs"
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=etcdc test CA" \
            -keyout ca-key.pem -out ca.pem 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unrelated CA" \
            -keyout other-ca-key.pem -out other-ca.pem 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
        openssl req -newkey rsa:2048 -nodes -subj "/CN=etcd server" -keyout server-key.pem \
            -out server.csr 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile server.ext -out server.pem 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl req -newkey rsa:2048 -nodes -subj "/CN=root" -keyout client-key.pem \
            -out client.csr 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile client.ext -out client.pem 2>/dev/null
    )
    export ETCDC_TEST_CERTS="$certs"
fi

cluster=""
endpoints=""
i=1
ports_left=$ports
while [ "$i" -le "$members" ]; do
    cport=${ports_left%% *}; ports_left=${ports_left#* }
    pport=${ports_left%% *}; ports_left=${ports_left#* }
    echo "$cport" >"$work/m$i.cport"
    echo "$pport" >"$work/m$i.pport"
    cluster="${cluster:+$cluster,}m$i=http://127.0.0.1:$pport"
    endpoints="${endpoints:+$endpoints,}127.0.0.1:$cport"
    i=$((i + 1))
done

i=1
while [ "$i" -le "$members" ]; do
    cport=$(cat "$work/m$i.cport")
    pport=$(cat "$work/m$i.pport")
    tlsargs=""
    if [ "$tls" = 1 ]; then
        tlsargs="--cert-file $certs/server.pem --key-file $certs/server-key.pem"  # no --trusted-ca-file: that would require client certificates
    fi
    ttlargs=""
    [ -n "$token_ttl" ] && ttlargs="--auth-token simple --auth-token-ttl $token_ttl"
    [ -n "$quota" ] && ttlargs="$ttlargs --quota-backend-bytes $quota"
    [ -n "$max_request" ] && ttlargs="$ttlargs --max-request-bytes $max_request"
    if [ "$jwt" = 1 ]; then
        [ -f "$work/jwt.key" ] || {
            openssl genrsa -out "$work/jwt.key" 2048 2>/dev/null
            openssl rsa -in "$work/jwt.key" -pubout -out "$work/jwt.pub" 2>/dev/null
        }
        ttlargs="$ttlargs --auth-token jwt,pub-key=$work/jwt.pub,priv-key=$work/jwt.key,sign-method=RS256,ttl=10m"
    fi
    cat >"$work/m$i.cmd" <<EOF
exec "$etcd_bin" --name m$i --data-dir $work/m$i.data \
  --listen-client-urls $scheme://127.0.0.1:$cport --advertise-client-urls $scheme://127.0.0.1:$cport \
  --listen-peer-urls http://127.0.0.1:$pport --initial-advertise-peer-urls http://127.0.0.1:$pport \
  --initial-cluster $cluster --initial-cluster-state new --initial-cluster-token etcdc-$$ \
  --heartbeat-interval 50 --election-timeout 500 $tlsargs $ttlargs >>$work/m$i.log 2>&1
EOF
    i=$((i + 1))
done

# member.sh start|stop|kill|pid I
cat >"$work/member.sh" <<EOF
#!/bin/sh
w=$work
# Gone = no such process, or a zombie nobody has reaped yet (etcd is orphaned once started).
wait_gone() {
    while kill -0 "\$1" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' /proc/\$1/stat 2>/dev/null; do
        sleep 0.05
    done
}
# SIGSTOP is delivered asynchronously: on a busy machine a thread may still answer a request
# after kill returns. Paused = every thread of the process shows state T.
wait_stopped() {
    while grep -qv '^[0-9]* (.*) [tT]' /proc/\$1/task/*/stat 2>/dev/null; do
        sleep 0.01
    done
}
case "\$1" in
start) sh \$w/m\$2.cmd & echo \$! >\$w/m\$2.pid ;;
stop) kill -TERM \$(cat \$w/m\$2.pid); wait_gone \$(cat \$w/m\$2.pid) ;;
kill) kill -KILL \$(cat \$w/m\$2.pid); wait_gone \$(cat \$w/m\$2.pid) ;;
pause) kill -STOP \$(cat \$w/m\$2.pid); wait_stopped \$(cat \$w/m\$2.pid) ;;
resume) kill -CONT \$(cat \$w/m\$2.pid) ;;
pid) cat \$w/m\$2.pid ;;
*) echo "usage: \$0 start|stop|kill|pause|resume|pid I" >&2; exit 2 ;;
esac
EOF
chmod +x "$work/member.sh"

i=1
while [ "$i" -le "$members" ]; do
    "$work/member.sh" start "$i"
    i=$((i + 1))
done

ctl() {
    if [ "$tls" = 1 ]; then
        etcdctl --endpoints "$endpoints" --cacert "$certs/ca.pem" "$@"
    else
        etcdctl --endpoints "$endpoints" "$@"
    fi
}

tries=0
until ctl --command-timeout=1s endpoint health --cluster >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 150 ]; then
        echo "run_with_etcd.sh: etcd did not become healthy; logs:" >&2
        tail -n 20 "$work"/m*.log >&2
        exit 1
    fi
    sleep 0.1
done

if [ "$auth" = 1 ]; then
    ctl user add root:rootpw >/dev/null
    ctl user add reader:readerpw >/dev/null
    ctl role add pubread >/dev/null
    ctl role grant-permission pubread --prefix=true read pub/ >/dev/null
    ctl user grant-role reader pubread >/dev/null
    ctl auth enable >/dev/null 2>&1 # etcdctl grants root the root role itself (with a warning)
    export ETCDC_TEST_USER=root ETCDC_TEST_PASSWORD=rootpw
fi

export ETCD_ENDPOINTS="$endpoints"
[ -z "$max_request" ] || export ETCDC_TEST_MAX_REQUEST_BYTES="$max_request"
export ETCDC_TEST_MEMBER_CTL="$work/member.sh"
set +e
${ETCDC_TEST_WRAP:-} "$@"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "run_with_etcd.sh: command exited with $rc; last etcd log lines:" >&2
    tail -n 5 "$work"/m*.log >&2 || true
fi
exit "$rc"
