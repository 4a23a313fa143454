#!/usr/bin/env bash
# Runs sqlite-safe's benchmarks against modernc.org/sqlite in the same run,
# writes the raw results, the benchstat comparison and the target check.
#
#   scripts/bench.sh           the targets only (about 4 minutes)
#   scripts/bench.sh full      every benchmark (much longer)
#
# COUNT (default 6) runs of each benchmark; BENCHTIME (default 2s) each.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH)/bin"
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest

mode=${1:-targets}
count=${COUNT:-6}
benchtime=${BENCHTIME:-2s}
case $mode in
targets)
	pattern='BenchmarkInsert/sync=NORMAL/impl=.*/g=(1|64)$|BenchmarkReadModifyWrite/sync=NORMAL/impl=(modernc-tuned|sqlite-safe)/g=32$|BenchmarkPointRead/load=alone/impl=.*/g=1$'
	;;
full)
	pattern='.'
	;;
*)
	echo "usage: $0 [targets|full]" >&2
	exit 2
	;;
esac

out=bench/$mode.txt
mkdir -p bench
{
	echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(go version) $(nproc) cores"
	go test -run '^$' -bench "$pattern" -benchtime "$benchtime" -count "$count" .
} | tee "$out"
benchstat -col /impl "$out" | tee "bench/$mode.benchstat.txt"
go run ./scripts/benchtargets "$out" | tee "bench/$mode.targets.md"
