// Package metricstest reads metric values in tests: from a registry
// (Gather) or from the text a /metrics endpoint answers (Parse).
package metricstest

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are metric families by name.
type Families map[string]*dto.MetricFamily

// Gather gathers g's families.
func Gather(tb testing.TB, g prometheus.Gatherer) Families {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	out := Families{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// Parse reads the Prometheus text format.
func Parse(tb testing.TB, r io.Reader) Families {
	tb.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		tb.Fatalf("parsing metrics: %v", err)
	}
	return Families(mfs)
}

// Value returns the value of the series of family name whose labels
// include labels (a counter's or gauge's value, a histogram's count),
// summed over the series that match; 0 when there are none.
func (f Families) Value(name string, labels map[string]string) float64 {
	mf, ok := f[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func matches(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// L builds a label set from pairs: L("result", "allowed", "kind", "pat").
func L(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}
