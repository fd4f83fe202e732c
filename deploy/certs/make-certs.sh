#!/bin/sh
# Make the broker's TLS material with openssl:
#   ca.key, ca.crt      the Boucle CA (made once, kept: devices trust it for years)
#   server.key/.crt     the broker's certificate, signed by the CA (re-run to renew)
#   ca-bundle.pem       the CA bundle that goes into device configs (`boucle flash`)
#
# Usage: deploy/certs/make-certs.sh [-o DIR] [-d DAYS] [BROKER_NAME_OR_IP ...]
#   BROKER_NAME_OR_IP  every name and address devices use to reach the broker, e.g.
#                      mqtt.example.org 192.0.2.10; "mosquitto", "localhost" and
#                      127.0.0.1 are always included.
#   -o DIR             output folder (default: the folder of this script)
#   -d DAYS            server certificate lifetime (default 825, the most clients accept)
#
# Keep ca.key offline once the fleet is provisioned: whoever has it can impersonate the
# broker. The eclipse-mosquitto container reads server.key as uid 1883 (Mosquitto 2
# loads keys after dropping root): `sudo chown 1883 DIR/server.key` on the Docker host.
set -eu

out=$(dirname "$0")
days=825
while getopts "o:d:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    d) days=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
command -v openssl >/dev/null || { echo "make-certs: openssl not found; install it (apt-get install openssl)" >&2; exit 2; }
mkdir -p "$out"
cd "$out"

san="DNS:mosquitto,DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1"
cn=mosquitto
for name in "$@"; do
  if printf '%s' "$name" | grep -Eq '^[0-9.]+$|:'; then
    san="$san,IP:$name"
  else
    san="$san,DNS:$name"
    [ "$cn" = mosquitto ] && cn=$name
  fi
done

umask 077
if [ ! -f ca.key ]; then
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 \
    -keyout ca.key -out ca.crt -subj "/O=Boucle/CN=Boucle MQTT CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "make-certs: new CA in $out/ca.crt"
else
  echo "make-certs: keeping the existing CA ($out/ca.key)"
fi

openssl req -newkey rsa:2048 -sha256 -nodes -keyout server.key -out server.csr \
  -subj "/O=Boucle/CN=$cn" 2>/dev/null
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -sha256 -days "$days" -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext
umask 022
chmod 644 ca.crt server.crt
cp ca.crt ca-bundle.pem
chmod 644 ca-bundle.pem
openssl verify -CAfile ca.crt server.crt >/dev/null
echo "make-certs: broker certificate $out/server.crt for $san, valid $days days"
echo "make-certs: device CA bundle $out/ca-bundle.pem"
