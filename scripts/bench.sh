#!/usr/bin/env bash
# Runs the proof-at-scale suite and the performance benchmarks at their full
# sizes and writes the figures to bench-results/ (one log per suite and
# summary.md with every summary line). docs/benchmarks.md explains each
# figure; it records a run of this script.
#
#   make bench                       # everything (under 30 minutes on 2 cores; docs/benchmarks.md)
#   ICN_SIM_NODES=100,200 make bench   # other simulation sizes
#   BENCH_ONLY=sim make bench        # one suite: sim (with simfaults), simfaults, wan, chaos, store, catchup, gossip, tracing
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=bench-results
mkdir -p "$out"
export ICN_BENCH=1
export ICN_SIM_NODES="${ICN_SIM_NODES:-100}" # 200 and 500: see docs/benchmarks.md
export ICN_CHAOS_ROUNDS="${ICN_CHAOS_ROUNDS:-50}"
export ICN_CHAOS_PARTITION="${ICN_CHAOS_PARTITION:-45s}"
only="${BENCH_ONLY:-}"

run() { # name, then the go test arguments
	local name=$1
	shift
	if [[ -n "$only" && "$name" != "$only"* ]]; then # sim runs sim and simfaults
		return 0
	fi
	printf '==> %s\n' "$name"
	local started=$SECONDS
	if ! go test -count=1 -timeout 60m "$@" 2>&1 | tee "$out/$name.log" | grep -E '^(SIM|WAN|CHAOS)|^\s+\S+_test.go:[0-9]+: (SIM|WAN|CHAOS)|^Benchmark|^(ok|FAIL|---)'; then
		echo "$name failed; see $out/$name.log" >&2
		return 1
	fi
	printf '    (%ds)\n' $((SECONDS - started))
}

# The emulated WAN measures real time against a CPU-bound loopback
# baseline: it runs alone. The simulations run in virtual time, so their
# figures do not depend on the machine's load; they share the machine with
# the chaos suite, whose results are pass/fail and times of seconds.
run wan -v -run 'TestWAN' ./internal/e2e/
# Each simulation uses about one core (simnet routes every packet through
# one goroutine), so the scale test and the fault and attack scenarios run
# as two processes.
simlog=$(mktemp)
faultlog=$(mktemp)
run sim -v -run 'TestSimScale' ./internal/sim/ >"$simlog" 2>&1 &
simpid=$!
run simfaults -v -run 'TestSmallNetwork|TestSimPartition|TestSimChurn|TestSimLostPeer|TestSimSybil' ./internal/sim/ >"$faultlog" 2>&1 &
faultpid=$!
failed=0
run chaos -v -run 'TestChaos' ./internal/e2e/ || failed=1
wait "$faultpid" || failed=1
cat "$faultlog"
wait "$simpid" || failed=1
cat "$simlog"
rm -f "$simlog" "$faultlog"
if ((failed != 0)); then
	exit 1
fi
# The performance benchmarks, as docs/ledger.md and docs/gossip.md run them.
run store -run '^$' -bench 'VerifyCeiling|Ingest|Open' -benchtime 2s -count 3 ./ledger/store/
run catchup -run '^$' -bench CatchUp -benchtime 1x -count 3 ./node/
run gossip -run '^$' -bench Gossip -benchtime 10000x -count 3 ./protocols/gossip/
run tracing -run '^$' -bench Span -count 3 ./internal/tracing/

{
	echo "# make bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(git describe --always --dirty)"
	echo
	for f in "$out"/*.log; do
		echo "## $(basename "$f" .log)"
		echo '```'
		grep -hoE '(SIM|WAN|CHAOS)[A-Z]* .*|^Benchmark.*' "$f" || true
		echo '```'
	done
} >"$out/summary.md"
echo "figures in $out/summary.md"
