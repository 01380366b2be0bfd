#!/bin/sh
# contrib/demo.sh - the one command that sets up and runs sealpostd on an
# embedded demo configuration: installs the packages (as root), builds,
# creates demo/ (SQLite database, master key, a practice, a clinician, a
# patient and an API client on loopback ports), prints how to submit a first
# letter, and runs the daemon in the foreground (Ctrl-C stops it cleanly).
# Re-running reuses demo/; remove the folder to start over.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/demo
build=$top/build
http_port=${SEALPOST_DEMO_HTTP_PORT:-8025}
smtp_port=${SEALPOST_DEMO_SMTP_PORT:-8587}

"$top/contrib/deps.sh" build
"$top/contrib/build.sh" "$build"
ctl="$build/src/sealpostctl -f $demo/sealpost.conf"

if [ ! -f "$demo/sealpost.conf" ]; then
	mkdir -p "$demo"
	chmod 0700 "$demo"
	cat >"$demo/sealpost.conf" <<CONF
# sealpost demo configuration (contrib/demo.sh); see sealpost.conf(5).
[daemon]
database = $demo/sealpost.db
master_key_file = $demo/master.key
control_socket = $demo/control.sock
log = stderr

[http]
listen = 127.0.0.1:$http_port

[smtp]
listen = 127.0.0.1:$smtp_port
hostname = sealpost.demo.example
CONF
	$ctl keys init >/dev/null
	practice=$($ctl practice add --name "Riverside Surgery (demo)" \
	    --domain riverside.example)
	clinician=$($ctl clinician add --practice "$practice" \
	    --name "Dr A. Patel (demo)" --email dr.patel@riverside.example)
	$ctl patient add --practice "$practice" --name "Jo Bloggs (demo)" \
	    --email jo@patient.example --verified --consent >"$demo/patient.id"
	# A patient with no email address: her letters go to the paper queue.
	$ctl patient add --practice "$practice" \
	    --name "Sam Smith (demo, no email)" >"$demo/patient2.id"
	$ctl patient set "$(cat "$demo/patient2.id")" \
	    --address '2 Mill Road\nRiverton RV2 2BB' >/dev/null
	$ctl practice set "$practice" --failsafe office@riverside.example \
	    --address '1 River Lane\nRiverton RV1 1AA' \
	    --phone '01234 567890' >/dev/null
	echo "$clinician" >"$demo/clinician.id"
	$ctl client add --practice "$practice" --name "demo clinical system" \
	    --author "$clinician" 2>/dev/null >"$demo/client.token"
	chmod 0600 "$demo/client.token"
fi
token=$(cat "$demo/client.token")
patient=$(cat "$demo/patient.id")
patient2=$(cat "$demo/patient2.id")
clinician=$(cat "$demo/clinician.id")

cat <<MSG

sealpost demo: database $demo/sealpost.db, HTTP 127.0.0.1:$http_port,
SMTP 127.0.0.1:$smtp_port.  In another terminal, submit a first letter:

  curl -sS http://127.0.0.1:$http_port/v1/letters \\
    -H 'Authorization: Bearer $token' \\
    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
    -d '{"patient": $patient, "author": $clinician, "subject": "Your blood test",
         "text": "Dear Jo, your results are normal.", "priority": "routine"}'

  curl -sS http://127.0.0.1:$http_port/v1/letters/1 -H 'Authorization: Bearer $token'

or by SMTP:

  swaks --server 127.0.0.1:$smtp_port --auth PLAIN --auth-user demo \\
    --auth-password '$token' --from dr.patel@riverside.example \\
    --to patient-$patient@riverside.example --header 'Subject: Results' --body 'Dear Jo, ...'

See it is sealed, and open it as the patient with the stock age tool:

  $build/src/sealpostctl -f $demo/sealpost.conf letter show 1
  sqlite3 $demo/sealpost.db "select writefile('$demo/letter1.age', sealed) from letters where id = 1"
  $build/src/sealpostctl -f $demo/sealpost.conf identity export patient $patient -o $demo/patient.key
  age -d -i $demo/patient.key $demo/letter1.age

The demo has no smarthost ([relay] host is empty): letters to Jo wait in the
queue.  A letter to Sam, who has no email address, goes straight to the
paper queue; print it:

  curl -sS http://127.0.0.1:$http_port/v1/letters \
    -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \
    -d '{"patient": $patient2, "author": $clinician, "subject": "Your appointment",
         "text": "Dear Sam, please book a review.", "priority": "routine"}'
  $build/src/sealpostctl -f $demo/sealpost.conf paper list
  $build/src/sealpostctl -f $demo/sealpost.conf paper print ID -o $demo/letter.pdf

(ID: the LETTER column of "paper list").

Starting sealpostd (Ctrl-C to stop).
MSG
exec "$build/src/sealpostd" -f "$demo/sealpost.conf"
