package peers

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketsCoverEveryValue: the buckets are contiguous from 0 to the
// largest int64, and every value lands in the bucket whose bounds hold it.
func TestBucketsCoverEveryValue(t *testing.T) {
	var next int64
	for i := range histBuckets {
		lo, hi := bucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if b := bucketOf(v); b != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, b, i)
			}
		}
		next = hi + 1
	}
	if _, hi := bucketBounds(histBuckets - 1); hi != math.MaxInt64 {
		t.Fatalf("the last bucket ends at %d, want %d", hi, int64(math.MaxInt64))
	}
}

// TestQuantileWithinPrecision: on latencies spread from 100 ns to 10 s,
// every quantile is within 1/128 of the exact ceil(q*n)-th smallest, and
// Max is exact.
func TestQuantileWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Hist
	vs := make([]int64, 100_000)
	for i := range vs {
		vs[i] = int64(100 * math.Pow(10, 8*rng.Float64()))
		h.Record(time.Duration(vs[i]))
	}
	slices.Sort(vs)
	for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		exact := vs[int(math.Ceil(q*float64(len(vs))))-1]
		got := int64(h.Quantile(q))
		if math.Abs(float64(got-exact)) > float64(exact)/128 {
			t.Errorf("Quantile(%v) = %d, exact %d: off by more than 1/128", q, got, exact)
		}
	}
	if h.Max() != time.Duration(vs[len(vs)-1]) || h.Count() != uint64(len(vs)) {
		t.Errorf("Max %d, Count %d; want %d, %d", h.Max(), h.Count(), vs[len(vs)-1], len(vs))
	}
}

// TestQuantileExactForSmallValues: below 128 ns each value has its own
// bucket, so quantiles are exact; an empty histogram gives 0.
func TestQuantileExactForSmallValues(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 {
		t.Fatalf("empty: Quantile(0.5) = %v, want 0", h.Quantile(0.5))
	}
	for v := 100; v >= 1; v-- {
		h.Record(time.Duration(v))
	}
	h.Record(-5) // counts as 0
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0.001: 0} {
		if got := h.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %d, want %d", q, got, want)
		}
	}
}

// TestMergeEqualsRecordingAll: merging two histograms gives the histogram
// of every value.
func TestMergeEqualsRecordingAll(t *testing.T) {
	var a, b, all Hist
	for i := range 5000 {
		v := time.Duration(i * i)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatalf("merged: count %d max %v; all: count %d max %v", a.Count(), a.Max(), all.Count(), all.Max())
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 9, 7}, 5},
	} {
		in := slices.Clone(tc.in)
		if got := Median(in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("Median changed its input: %v, was %v", in, tc.in)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}
