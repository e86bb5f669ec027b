#!/usr/bin/env bash
# tests/bench/floor.sh - milter-nexthop's CPU per message against the floor:
# a trivial libmilter filter (tests/bench/bench_floor_milter.c) that
# negotiates exactly what milter-nexthop negotiates (same actions, protocol
# steps, no-reply flags and macro lists), answers every RCPT "continue" and
# adds one header at end of message.
#   nexthop - milter-nexthop, header mode, every recipient validated against
#             a real Dovecot LMTP and answered from its warm cache
#   floor   - bench_floor_milter
# Each milter sits behind its own private Postfix (unix socket, relayhost
# smtp-sink, which discards). smtp-source sends M messages, 10 sessions, one
# message per SMTP (and so per milter) connection, 5 recipients each, of two
# kinds:
#   small - smtp-source's own message (4 header lines + Postfix's Received:,
#           4 body lines)
#   real  - a realistic one: 25 header fields (some folded) + Received:,
#           8 KB body
# CPU is utime+stime of the milter process from /proc/PID/stat (all its
# threads, exited ones included), read before and after each run; a run ends
# when smtp-source is done and the milter's connection threads are gone.
# Every run checks, from Postfix's log (milter_header_checks WARN), that each
# message came back with the milter's header.
# In a round, each message kind is sent to both Postfix instances at the same
# time (FLOOR_MODE=paired, the default: both milters see the same machine, so
# other load on it shifts both alike), or to one after the other
# (FLOOR_MODE=alternate); the order alternates between rounds. At the end,
# per message kind: the median and spread (min-max) of µs per message with
# its user/sys split; the ratio to steer by is the median of the rounds'
# ratios (each round's two figures share the machine's load), then each
# round's ratio and the ratio of the two medians.
# FLOOR_LEVERS=1 also prices the negotiation's levers: the floor against
# floors that ask Postfix for less (no headers, no body, no macro values).
# Figures only, no assert: the issue's goal is nexthop <= 1.10 x floor.
# Usage: [FLOOR_MODE=paired|alternate] [FLOOR_LEVERS=1] tests/bench/floor.sh [MESSAGES] [ROUNDS]
#        (defaults 2000, 5; about 40 s per round, 2 min more for the levers)
# Must not: reach beyond 127.0.0.1, or stop anything it did not start.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
M=${1:-2000}
ROUNDS=${2:-5}
MODE=${FLOOR_MODE:-paired}
[[ $MODE == paired || $MODE == alternate ]] || { echo "FLOOR_MODE is paired or alternate" >&2; exit 2; }
bench_init
# always bring both binaries up to date: this script compares them
cmake --build "$BUILD" -j2 --target milter-nexthop bench_floor_milter >/dev/null
FLOOR_BIN=$BUILD/tests/bench_floor_milter
HZ=$(getconf CLK_TCK)

# The floor is only the floor while it negotiates what milter-nexthop does:
# compare the negotiation and the registered callbacks of the two sources.
negotiation() { # FILE -> its actions, steps, no-reply flags, macro lists, callbacks
    { sed -n '/^static sfsistat on_negotiate/,/^}/p' "$1" |
        grep -E 'smfi_setsymlist|unsigned long (want|no_reply)|SMFIP_NR_EOH|\*pf1 ='
      grep -E '^ *\.xxfi_' "$1" | grep -v xxfi_name; } |
        sed 's/(char \*)none/""/; s/ | leaner//; s/s->no_reply/no_reply/'
}
if ! diff <(negotiation milter/callbacks.c) <(negotiation tests/bench/bench_floor_milter.c) >&2; then
    echo "tests/bench/bench_floor_milter.c no longer negotiates what milter/callbacks.c does (above): update it" >&2
    exit 1
fi

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; } # utime stime
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
wait_threads() { # PID N: until the milter is back to N threads (its connections closed)
    local end=$((SECONDS + 10))
    while (($(threads "$1") > $2)); do
        ((SECONDS < end)) || { echo "warning: milter $1 still has $(threads "$1") threads, not $2" >&2; return 0; }
        sleep 0.02
    done
}
settled_threads() { # PID: its thread count once it has not moved for 1 s (after a warm-up)
    local n m=-1 end=$((SECONDS + 30))
    while n=$(threads "$1"); ((n != m && SECONDS < end)); do
        m=$n
        sleep 1
    done
    echo "$n"
}
wait_socket() { # PID PATH
    local i
    for i in $(seq 1 200); do
        [[ -S $2 ]] && return 0
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    echo "milter $1 did not create $2" >&2
    return 1
}

# -------------------------------------------------------------- the rig
dovecot_start "$BENCH_DIR/dovecot" >/dev/null
bench_milter_conf "$BENCH_DIR/milter.conf" header
milter_start "$BENCH_DIR/m" "$BENCH_DIR/milter.conf" "unix:$BENCH_DIR/m/milter.sock"
mkdir -p "$BENCH_DIR/f"
chmod 755 "$BENCH_DIR/f"
floor_pid=''
bench_bg floor_pid "$FLOOR_BIN" "unix:$BENCH_DIR/f/floor.sock"
wait_socket "$floor_pid" "$BENCH_DIR/f/floor.sock"
chmod 0666 "$BENCH_DIR/f/floor.sock"
declare -A pid=([nexthop]=$MILTER_PID [floor]=$floor_pid)
declare -A header=([nexthop]="X-Nexthop: dovecot" [floor]="X-Floor: floor")
# FLOOR_LEVERS=1: two leaner floors that ask Postfix for less (the price of
# the negotiation's levers, measured against the floor on the realistic message)
levers=()
[[ -n ${FLOOR_LEVERS:-} ]] && levers=(nohdrs nobody macros)
declare -A leaner=([nohdrs]=hdrs [nobody]=body [macros]=macros)
for v in "${levers[@]}"; do
    mkdir -p "$BENCH_DIR/$v.m"
    chmod 755 "$BENCH_DIR/$v.m"
    bench_bg "pid[$v]" "$FLOOR_BIN" "unix:$BENCH_DIR/$v.m/floor.sock" "${leaner[$v]}"
    wait_socket "${pid[$v]}" "$BENCH_DIR/$v.m/floor.sock"
    chmod 0666 "$BENCH_DIR/$v.m/floor.sock"
    header[$v]="X-Floor: floor"
done

sink=$(rig_free_port)
bench_bg sink_pid /usr/sbin/smtp-sink -u nobody "127.0.0.1:$sink" 1000 >/dev/null 2>&1
rig_wait_port "$sink" 10
common=("relayhost = [127.0.0.1]:$sink" "smtpd_client_connection_count_limit = 0"
        "smtpd_client_message_rate_limit = 0" "smtpd_client_recipient_rate_limit = 0"
        "default_process_limit = 200")
declare -A port
postfix_start "$BENCH_DIR/nexthop" "${common[@]}" "smtpd_milters = unix:$BENCH_DIR/m/milter.sock" \
    "milter_header_checks = regexp:{{/^X-Nexthop: dovecot/ WARN}}" >/dev/null
port[nexthop]=$POSTFIX_PORT
postfix_start "$BENCH_DIR/floor" "${common[@]}" "smtpd_milters = unix:$BENCH_DIR/f/floor.sock" \
    "milter_header_checks = regexp:{{/^X-Floor: floor/ WARN}}" >/dev/null
port[floor]=$POSTFIX_PORT
for v in "${levers[@]}"; do
    postfix_start "$BENCH_DIR/$v" "${common[@]}" "smtpd_milters = unix:$BENCH_DIR/$v.m/floor.sock" \
        "milter_header_checks = regexp:{{/^X-Floor: floor/ WARN}}" >/dev/null
    port[$v]=$POSTFIX_PORT
done

# the realistic message: 25 header fields, 8 KB body (smtp-source -F adds CRLFs)
real=$BENCH_DIR/real.msg
{
    for i in 1 2 3; do
        printf 'Received: from relay%d.example.org (relay%d.example.org [192.0.2.%d])\n' "$i" "$i" "$i"
        printf '\tby mx%d.example.net (Postfix) with ESMTPS id 4Xy%dKq7Lz;\n' "$i" "$i"
        printf '\tMon, 23 Nov 2026 09:1%d:02 +0100 (CET)\n' "$i"
    done
    cat <<'HDR'
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s2026;
	t=1795424102; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	h=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;
	b=Lm1k2sYvQ0xq3n8mB7hV5cT4sX2zR9pW6oN1aK8jE3fD5gH7iJ0kL2mN4oP6qR8sT0uV
	 2wX4yZ6aB8cD0eF2gH4iJ6kL8mN0oP2qR4sT6uV8wX0yZ2aB4cD6eF8gH0iJ2kL4mN6o==
ARC-Seal: i=1; a=rsa-sha256; t=1795424102; cv=none; d=example.org; s=arc-2026;
	b=q7Wm3kB9vX1nL5pR8tY2cF6hJ0dS4gA7zE3uI9oK1mN5bV8xC2qW6eR0tY4uI8oP2aS
ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;
	s=arc-2026; h=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQe=;
	b=Zx9Cv8Bn7Mm6Ll5Kk4Jj3Hh2Gg1Ff0Dd9Ss8Aa7Qq6Ww5Ee4Rr3Tt2Yy1Uu0Ii9Oo8Pp7
ARC-Authentication-Results: i=1; mx1.example.net; dkim=pass header.d=example.org;
	spf=pass smtp.mailfrom=example.org; dmarc=pass header.from=example.org
Authentication-Results: mx1.example.net; dkim=pass (2048-bit key) header.d=example.org
From: "Sam Sender" <sender@example.org>
To: alice@dovecot.test, 2alice@dovecot.test, 3alice@dovecot.test,
	4alice@dovecot.test, 5alice@dovecot.test
Cc: "Team list" <team@example.org>
Reply-To: "Team list" <team@example.org>
Subject: Re: [team] Quarterly figures, draft 3 (please review before Friday)
Date: Mon, 23 Nov 2026 09:10:58 +0100
Message-ID: <20261123081058.GA12345@host.example.org>
In-Reply-To: <20261120160201.GB9876@host.example.org>
References: <20261119101500.GA1111@host.example.org>
	<20261120160201.GB9876@host.example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: 8bit
List-Id: Team discussion <team.example.org>
List-Unsubscribe: <mailto:team-leave@example.org>, <https://lists.example.org/u/team>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
Precedence: list
X-Mailer: Mutt/2.2.12 (2023-09-09)

HDR
    line='Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod te'
    for i in $(seq 1 106); do printf '%s\n' "$line"; done   # 106 x (75 + CRLF) = 8056 bytes
    printf 'Regards,\nSam\n'
} >"$real"
n=$(grep -c '^[A-Za-z-]*:' <(sed '/^$/q' "$real"))
((n == 25)) || { echo "the realistic message has $n header fields, not 25" >&2; exit 1; }

declare -A msg_args=([small]="" [real]="-F $real")

seen() { grep -c "warning: header ${header[$1]}" "$BENCH_DIR/$1/maillog" || true; }

# run KIND COUNT MILTER...: COUNT messages of KIND into each MILTER's Postfix,
# all at the same time; one line per milter: "NAME total-µs user-µs sys-µs
# msg/s" (µs of CPU per message), or fails.
run() {
    local k=$1 n=$2 v t0 t1 end rc=0 us
    shift 2
    local -A u0 k0 u1 k1 s0 s1 src
    for v in "$@"; do
        postfix_wait_empty "$BENCH_DIR/$v" 120 || echo "warning: $v: queue not empty" >&2
        wait_threads "${pid[$v]}" "${idle[$v]}"
        s0[$v]=$(seen "$v")
    done
    for v in "$@"; do read -r "u0[$v]" "k0[$v]" < <(cpu_ticks "${pid[$v]}"); done
    t0=$EPOCHREALTIME
    for v in "$@"; do
        # shellcheck disable=SC2086 # msg_args holds two words or none
        /usr/sbin/smtp-source -m "$n" -s 10 -r 5 -t alice@dovecot.test -f s@example.net \
            ${msg_args[$k]} "127.0.0.1:${port[$v]}" >"$BENCH_DIR/$v.out" 2>&1 &
        src[$v]=$!
    done
    for v in "$@"; do
        wait "${src[$v]}" || { echo "smtp-source into $v failed: $(tail -3 "$BENCH_DIR/$v.out")" >&2; rc=1; }
    done
    ((rc == 0)) || return 1
    for v in "$@"; do wait_threads "${pid[$v]}" "${idle[$v]}"; done
    t1=$EPOCHREALTIME
    for v in "$@"; do read -r "u1[$v]" "k1[$v]" < <(cpu_ticks "${pid[$v]}"); done
    # the milter's header on every message (Postfix logs it asynchronously)
    end=$((SECONDS + 30))
    for v in "$@"; do
        while s1[$v]=$(seen "$v"); ((s1[$v] - s0[$v] < n && SECONDS < end)); do sleep 0.05; done
        ((s1[$v] - s0[$v] == n)) || { echo "$v: header on $((s1[$v] - s0[$v])) of $n messages" >&2; return 1; }
    done
    us="1000000 / $HZ / $n"
    for v in "$@"; do
        echo "$v $(echo "(${u1[$v]} + ${k1[$v]} - ${u0[$v]} - ${k0[$v]}) * $us" | bc -l)" \
            "$(echo "(${u1[$v]} - ${u0[$v]}) * $us" | bc -l) $(echo "(${k1[$v]} - ${k0[$v]}) * $us" | bc -l)" \
            "$(echo "$n / ($t1 - $t0)" | bc -l)"
    done
}

# ------------------------------------------------------------ warm-up
# (threads it starts on first use, e.g. milter-nexthop's pool, stay: the
# count to wait for at the end of a run is taken once warm)
declare -A idle=([nexthop]=1000 [floor]=1000 [nohdrs]=1000 [nobody]=1000 [macros]=1000)
for v in nexthop floor "${levers[@]}"; do
    for k in small real; do run "$k" 50 "$v" >/dev/null; done
    idle[$v]=$(settled_threads "${pid[$v]}")
done
# background CPU of each milter with no mail (10 s)
ticks() { cpu_ticks "$1" | awk '{print $1 + $2}'; }
declare -A idle_cpu
for v in nexthop floor; do idle_cpu[$v]=$(ticks "${pid[$v]}"); done
sleep 10
for v in nexthop floor; do
    idle_cpu[$v]=$(echo "($(ticks "${pid[$v]}") - ${idle_cpu[$v]}) * 1000 / $HZ / 10" | bc -l)
done

# ------------------------------------------------------------ rounds
declare -A us usr sys ratios
for k in small real; do
    ratios[$k]=""
    for v in nexthop floor; do us[$v.$k]="" usr[$v.$k]="" sys[$v.$k]=""; done
done
if [[ $MODE == paired ]]; then
    echo "CPU per message of each milter process; per run $M messages x 5 recipients, 10 sessions, into both Postfix instances at once:"
else
    echo "CPU per message of each milter process; per run $M messages x 5 recipients, 10 sessions, one milter after the other:"
fi
for r in $(seq 1 "$ROUNDS"); do
    order=(nexthop floor)
    ((r % 2)) || order=(floor nexthop)
    for k in small real; do
        declare -A tot=()
        if [[ $MODE == paired ]]; then
            out=$(run "$k" "$M" "${order[@]}") || exit 1
        else
            out=$(run "$k" "$M" "${order[0]}" && run "$k" "$M" "${order[1]}") || exit 1
        fi
        while read -r v t u k2 rate; do
            us[$v.$k]+=" $t" usr[$v.$k]+=" $u" sys[$v.$k]+=" $k2" tot[$v]=$t
            printf 'round %d %-5s %-7s %6.1f µs/msg (user %5.1f, sys %5.1f)  %6.1f msg/s\n' \
                "$r" "$k" "$v" "$t" "$u" "$k2" "$rate"
        done <<<"$out"
        ratios[$k]+=" $(ratio "${tot[nexthop]}" "${tot[floor]}")"
    done
done

spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f-%.0f", lo, hi}'; }
printf '\nmedian (spread) over %d rounds, µs of CPU per message (user + sys); idle: nexthop %.1f ms/s, floor %.1f ms/s\n' \
    "$ROUNDS" "${idle_cpu[nexthop]}" "${idle_cpu[floor]}"
printf '  %-38s %-26s %-26s %s\n' message milter-nexthop floor "ratio: median of the rounds' (each round); of the medians"
for k in small real; do
    declare -A med=() cell=()
    for v in nexthop floor; do
        # shellcheck disable=SC2086 # word lists
        med[$v]=$(median_of ${us[$v.$k]})
        # shellcheck disable=SC2086
        cell[$v]=$(printf '%4.0f (%s; %.0f + %.0f)' "${med[$v]}" "$(spread ${us[$v.$k]})" \
            "$(median_of ${usr[$v.$k]})" "$(median_of ${sys[$v.$k]})")
    done
    [[ $k == small ]] && label="smtp-source's message, 5 rcpts" || label="realistic: 25 headers, 5 rcpts, 8 KB"
    # shellcheck disable=SC2086
    printf '  %-38s %-26s %-26s %s (%s); %s\n' "$label" "${cell[nexthop]}" "${cell[floor]}" \
        "$(median_of ${ratios[$k]})" "${ratios[$k]# }" "$(ratio "${med[nexthop]}" "${med[floor]}")"
done
echo "goal (issue 17): milter-nexthop <= 1.10 x the floor on both messages"

((${#levers[@]})) || exit 0
# the levers: the floor against a leaner floor, realistic message, both at once
printf '\nlevers, realistic message: the floor against a floor that asks Postfix for less (median of %d paired runs)\n' "$ROUNDS"
for l in "${levers[@]}"; do
    declare -A lv=([floor]="" [$l]="")
    for r in $(seq 1 "$ROUNDS"); do
        order=(floor "$l")
        ((r % 2)) || order=("$l" floor)
        out=$(run real "$M" "${order[@]}") || exit 1
        while read -r v t _; do lv[$v]+=" $t"; done <<<"$out"
    done
    # shellcheck disable=SC2086 # word lists
    mf=$(median_of ${lv[floor]}) ml=$(median_of ${lv[$l]})
    case $l in
    nohdrs) what="no headers, no end of headers (SMFIP_NOHDRS | SMFIP_NOEOH)" ;;
    nobody) what="no body (SMFIP_NOBODY)" ;;
    macros) what="no \"i\" macro before each header (an undefined macro, not \"\")" ;;
    esac
    printf '  %-58s %4.0f µs/msg, floor %4.0f: saves %.0f µs/msg\n' "$what" "$ml" "$mf" "$(echo "$mf - $ml" | bc -l)"
done
