#!/usr/bin/env bash
# A scheduled (nightly) lidframe job: identify the languages of MANIFEST into OUT, resuming
# whatever an earlier run of the same job left, and act on lidframe's exit status:
#
#   0        done. Rows whose audio could not be used (missing files, undecodable clips) are not a
#            failure of the job, but they are counted and alerted on when there are any.
#   1        partial failure: dead partitions, or a systemic failure (storage refusing the
#            credentials, the job database lost). Alert; not retried blindly: `lidframe status`
#            says why, and the same run with --retry-dead tries dead partitions again.
#   2        configuration error found before any work (manifest, model, --out, --db). Alert;
#            never retried (it would fail the same way).
#   130/143  interrupted or terminated (a preempted node, an operator's kill): the job's state is
#            kept, so it is run again at once, up to NIGHTLY_RETRIES times; it resumes. When this
#            script itself is being stopped (systemd, Ctrl-C), it stops instead.
#
# Usage: nightly.sh MANIFEST OUT [lidframe run flags...]     (e.g. --models whisper-base)
#
# Settings (environment):
#   NIGHTLY_JOB          job id (default: lid-nightly-<name of OUT>); the same id resumes
#   NIGHTLY_RETRIES      runs after an interruption (default 3)
#   NIGHTLY_RETRY_DELAY  seconds before each of them (default 60)
#   NIGHTLY_ALERT        a command run with the alert as its one argument (default: none; alerts
#                        always go to stderr), e.g. a script that mails or posts to a webhook
#   LIDFRAME             the lidframe command (default: lidframe on PATH)
#   LIDFRAME_DB          the job database URL, read by lidframe itself (default: OUT/_lidframe.sqlite)
#
# Exits with lidframe's last status, so the scheduler records a failed night as failed.
set -uo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 MANIFEST OUT [lidframe run flags...]" >&2
  exit 2
fi
manifest=$1
out=$2
shift 2
job=${NIGHTLY_JOB:-lid-nightly-$(basename "$out")}
retries=${NIGHTLY_RETRIES:-3}
delay=${NIGHTLY_RETRY_DELAY:-60}
read -r -a lidframe <<<"${LIDFRAME:-lidframe}"

alert() {
  echo "nightly: ALERT: $1" >&2
  if [ -n "${NIGHTLY_ALERT:-}" ]; then
    ${NIGHTLY_ALERT} "$1" || echo "nightly: the alert command failed" >&2
  fi
}

# This script being stopped (the scheduler's SIGTERM, Ctrl-C) reaches lidframe too (the same
# process group); remember it, so that lidframe's 143/130 then means "stop", not "retry".
stopping=0
trap 'stopping=1' TERM INT

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT

attempt=1
while :; do
  echo "nightly: run $attempt of job $job: $manifest -> $out" >&2
  # the summary goes to a file first (a pipe's reader would die with this process group)
  "${lidframe[@]}" run "$manifest" --out "$out" --job "$job" --no-progress "$@" >"$summary"
  status=$?
  cat "$summary"
  case $status in
    0)
      # lidframe: 12 rows in 3 partitions, 2 errors, ...   /   errors: not_found 2
      errors=$(sed -n 's/^lidframe: [0-9]* rows in [0-9]* partitions, \([0-9]*\) errors.*/\1/p' "$summary")
      if [ "${errors:-0}" -gt 0 ]; then
        why=$(sed -n 's/^ *errors: //p' "$summary")
        alert "job $job finished with $errors row(s) that have no answer ($why); see their 'error' column in $out"
      fi
      echo "nightly: job $job done" >&2
      exit 0
      ;;
    1)
      alert "job $job: partial failure (exit 1): dead partitions or a systemic failure; its state is kept. Look with \`lidframe status $job --out $out\`, then rerun (add --retry-dead for dead partitions)"
      exit 1
      ;;
    2)
      alert "job $job: configuration error (exit 2), not retried: fix the manifest, models or settings named above"
      exit 2
      ;;
    130 | 143)
      if [ "$stopping" -eq 1 ]; then
        echo "nightly: stopped; job $job kept its state and resumes on the next run" >&2
        exit "$status"
      fi
      if [ "$attempt" -gt "$retries" ]; then
        alert "job $job: interrupted (exit $status) $attempt times; giving up for tonight (it resumes on the next run)"
        exit "$status"
      fi
      echo "nightly: job $job interrupted (exit $status); resuming in $delay s" >&2
      sleep "$delay" &
      wait $! || true
      if [ "$stopping" -eq 1 ]; then
        exit "$status"
      fi
      attempt=$((attempt + 1))
      ;;
    *)
      alert "job $job: lidframe exited with unexpected status $status"
      exit "$status"
      ;;
  esac
done
