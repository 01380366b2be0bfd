#!/bin/sh
# tests/rig/testca.sh - a throwaway test CA and the server certificates the
# relay tests need, with openssl, in DIR (created; existing files are
# overwritten).  EC P-256 keys, so it takes well under a second.
#
# usage: testca.sh DIR
#
# DIR/ca.crt              the test CA (give it to the client as ca_file)
# DIR/server.{crt,key}    localhost, smarthost.rig.test, 127.0.0.1, ::1;
#                         TLS server purpose; valid for 2 days
# DIR/wrongname.{crt,key} same CA, but only wrong.rig.test
# DIR/unknownca.{crt,key} right names, signed by another CA (not in ca.crt)
# DIR/expired.{crt,key}   right names and CA, valid 2020-01-01..2020-01-02
# DIR/clientonly.{crt,key} right names and CA, TLS client purpose only
#
# DIR/otherca.crt         the CA of unknownca (its key is not kept)
#
# Each .crt holds the leaf only; the CA is an anchor, never sent.
set -eu

[ $# -eq 1 ] || { echo "usage: testca.sh DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

goodsan="subjectAltName=DNS:localhost,DNS:smarthost.rig.test,IP:127.0.0.1,IP:::1"

# A CA: name, key and self-signed certificate.
mkca() {	# $1 file stem, $2 CN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# A leaf signed by a CA: $1 stem, $2 CA stem, $3 SAN, $4 extended key usage.
mkleaf() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$1.key" -out "$1.csr" -subj "/CN=$1.rig.test" 2>/dev/null
	printf '%s\n' "basicConstraints=CA:FALSE" \
	    "keyUsage=critical,digitalSignature" "extendedKeyUsage=$4" "$3" \
	    >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" \
	    -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

mkca ca "sealpost test CA"
mkca otherca "some other CA"
mkleaf server ca "$goodsan" serverAuth
mkleaf wrongname ca "subjectAltName=DNS:wrong.rig.test" serverAuth
mkleaf unknownca otherca "$goodsan" serverAuth
mkleaf clientonly ca "$goodsan" clientAuth

# Expired: "openssl x509 -req" cannot backdate, "openssl ca" can.
mkdir -p expired.ca
: >expired.ca/index.txt
echo 01 >expired.ca/serial
cat >expired.ca/ca.cnf <<EOF
[ca]
default_ca = test
[test]
dir = expired.ca
database = expired.ca/index.txt
serial = expired.ca/serial
new_certs_dir = expired.ca
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = anything
copy_extensions = none
x509_extensions = leaf
unique_subject = no
[anything]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
$goodsan
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout expired.key -out expired.csr -subj "/CN=expired.rig.test" 2>/dev/null
openssl ca -batch -config expired.ca/ca.cnf -in expired.csr -out expired.crt \
    -startdate 20200101000000Z -enddate 20200102000000Z -notext 2>/dev/null
rm -rf expired.csr expired.ca otherca.key otherca.srl ca.srl

# Postfix (user postfix) and the test servers read the keys.
chmod 0644 ./*.crt ./*.key
