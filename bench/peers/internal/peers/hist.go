package peers

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Hist is a log-linear histogram of latencies in nanoseconds: exact below
// 128 ns, then 64 buckets for each power of two, so that a percentile it
// reports is within 1/128 (0.8%) of the latency it stands for. Recording
// allocates nothing, so a worker can record every call of a cell.
type Hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

const (
	// histExact is the number of values below which each has a bucket of
	// its own.
	histExact = 128
	// histSubBits is log2 of the number of buckets per power of two.
	histSubBits = 6
	// histBuckets covers every int64: the bucket of the largest one is
	// (63-7)<<6 + 127.
	histBuckets = (63-7)<<histSubBits + histExact
)

// bucketOf returns the bucket of v >= 0.
func bucketOf(v int64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	return shift<<histSubBits + int(v>>shift)
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < histExact {
		return int64(i), int64(i)
	}
	shift := i>>histSubBits - 1
	m := int64(i - shift<<histSubBits)
	lo = m << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one latency; a negative one counts as 0.
func (h *Hist) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	h.n++
	h.max = max(h.max, v)
}

// Merge adds every latency of o to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns the number of latencies recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max returns the largest latency recorded, exactly, or 0 if none was.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the latency that a share q (0 < q <= 1) of the recorded
// ones do not exceed: the ceil(q*n)-th smallest, as the middle of its
// bucket and never above Max. It returns 0 if nothing was recorded.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			return time.Duration(min(lo+(hi-lo)/2, h.max))
		}
	}
	return time.Duration(h.max)
}

// Median returns the median of xs (the mean of the middle two for an even
// count) without changing xs, or NaN when xs is empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
