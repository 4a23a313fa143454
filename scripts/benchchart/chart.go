package main

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// A sweep is a benchmark run over a number of goroutines, g.
type sweep struct {
	bench string // BenchmarkInsert: "Insert"
	file  string // in chart file names
	title string
	calls string // what one call is, plural
}

var sweeps = []sweep{
	{"Insert", "insert", "Autocommit inserts", "inserts"},
	{"ReadModifyWrite", "rmw", "Read-modify-write transactions", "transactions"},
}

// A metric is what one chart shows of a sweep.
type metric struct {
	file  string
	label func(sw sweep) string // the Y axis
	note  string                // under the title
	value func(run map[string]float64) (float64, bool)
	tick  func(float64) string
}

var metrics = []metric{
	{
		file:  "throughput",
		label: func(sw sweep) string { return "successful " + sw.calls + " per second (log scale)" },
		note:  "higher is better; failed calls (errors/op) do not count",
		value: okPerSecond,
		tick:  siTick,
	},
	{
		file:  "p50",
		label: func(sweep) string { return "median latency, ms (log scale)" },
		note:  "lower is better; every call, failed ones too",
		value: nsAsMs("p50-ns"),
		tick:  plainTick,
	},
	{
		file:  "p999",
		label: func(sweep) string { return "p99.9 latency, ms (log scale)" },
		note:  "lower is better; every call, failed ones too",
		value: nsAsMs("p99.9-ns"),
		tick:  plainTick,
	},
}

// okPerSecond is a run's successful calls per second: (1 - errors/op) /
// ns/op. A run without errors/op counts every call.
func okPerSecond(run map[string]float64) (float64, bool) {
	ns, ok := run["ns/op"]
	if !ok || ns <= 0 {
		return 0, false
	}
	return (1 - run["errors/op"]) * 1e9 / ns, true
}

func nsAsMs(unit string) func(map[string]float64) (float64, bool) {
	return func(run map[string]float64) (float64, bool) {
		v, ok := run[unit]
		return v / 1e6, ok
	}
}

// An implStyle is how one impl is drawn, the same in every chart.
type implStyle struct {
	name   string
	color  color.Color
	dashes []vg.Length
	glyph  draw.GlyphDrawer
}

var implStyles = []implStyle{
	{"modernc-defaults", color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff}, []vg.Length{vg.Points(2), vg.Points(2)}, draw.TriangleGlyph{}},
	{"modernc-tuned", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, []vg.Length{vg.Points(6), vg.Points(3)}, draw.CircleGlyph{}},
	{"sqlite-safe", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, nil, draw.BoxGlyph{}},
}

// styleOf returns the style of an impl; one not in implStyles gets a
// colour of its own.
func styleOf(impl string, i int) implStyle {
	for _, s := range implStyles {
		if s.name == impl {
			return s
		}
	}
	return implStyle{impl, extraColor(i), nil, draw.PlusGlyph{}}
}

func extraColor(i int) color.Color {
	palette := []color.Color{
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
		color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	}
	return palette[i%len(palette)]
}

// chart draws metric m of sweep sw at one synchronous setting: one line per
// impl over g. It reports false when the input has nothing to draw. Points
// that cannot go on a log scale (no successful call at all) are left out.
//
// Both axes are logarithmic. They are drawn as linear axes of log10 of the
// values, with ticks labelled with the values: gonum's plot.LogScale places
// the axis label's box at the arithmetic middle of the range, which on a
// log scale is near the end, and the data area shrinks to make room for it.
func chart(rs *results, sw sweep, sync string, m metric) (*plot.Plot, bool, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s, synchronous=%s\n%s", sw.title, sync, m.note)
	p.X.Label.Text = "goroutines (log scale)"
	p.Y.Label.Text = m.label(sw)
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(6)
	p.Add(plotter.NewGrid())

	var gs []float64
	ymin, ymax := math.Inf(1), math.Inf(-1)
	lines := 0
	for i, impl := range implOrder(rs, sw.bench) {
		var xys plotter.XYs
		for _, gv := range rs.values(sw.bench, "g") {
			r := rs.find(sw.bench, map[string]string{"sync": sync, "impl": impl, "g": gv})
			if r == nil {
				continue
			}
			g, err := strconv.ParseFloat(gv, 64)
			if err != nil || g <= 0 {
				return nil, false, fmt.Errorf("%s: g=%q is not a positive number", r.name, gv)
			}
			y, ok := r.median(m.value)
			if !ok || y <= 0 || math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: math.Log10(g), Y: math.Log10(y)})
			if !slices.Contains(gs, g) {
				gs = append(gs, g)
			}
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
		if len(xys) == 0 {
			continue
		}
		slices.SortFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		st := styleOf(impl, i)
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, false, err
		}
		line.Color, line.Width, line.Dashes = st.color, vg.Points(1.5), st.dashes
		if impl == "sqlite-safe" {
			line.Width = vg.Points(2.5)
		}
		points.Color, points.Shape, points.Radius = st.color, st.glyph, vg.Points(3)
		p.Add(line, points)
		p.Legend.Add(impl, line, points)
		lines++
	}
	if lines == 0 {
		return nil, false, nil
	}
	slices.Sort(gs)
	var xt plot.ConstantTicks
	for _, g := range gs {
		xt = append(xt, plot.Tick{Value: math.Log10(g), Label: strconv.FormatFloat(g, 'g', -1, 64)})
	}
	p.X.Tick.Marker = xt
	p.X.Min, p.X.Max = math.Log10(gs[0]/1.25), math.Log10(gs[len(gs)-1]*1.25)
	// Room at the top for the legend: a decade and a half.
	p.Y.Min, p.Y.Max = math.Log10(ymin/1.6), math.Log10(ymax*30)
	p.Y.Tick.Marker = logTicks{m.tick}
	return p, true, nil
}

// save writes p in the format its file name ends with.
func save(p *plot.Plot, file string) error {
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// logTicks marks an axis of log10 values: every power of ten labelled with
// its value (and 2 and 5 times it when the axis spans less than two
// decades), the other integer multiples as minor ticks.
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return nil
	}
	dense := hi-lo < 2
	var ticks []plot.Tick
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		for i := 1; i < 10; i++ {
			v := math.Pow(10, e) * float64(i)
			pos := math.Log10(v)
			if pos < lo-1e-9 || pos > hi+1e-9 {
				continue
			}
			label := ""
			if i == 1 || dense && (i == 2 || i == 5) {
				label = t.format(v)
			}
			ticks = append(ticks, plot.Tick{Value: pos, Label: label})
		}
	}
	return ticks
}

// siTick writes 1500 as 1.5k, 2000000 as 2M.
func siTick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// plainTick writes 0.01, 1, 1000.
func plainTick(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
