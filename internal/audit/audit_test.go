package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/internal/audit"
	"github.com/tokengate/tokengate/internal/store"
)

var t0 = time.Date(2025, 6, 1, 23, 59, 0, 0, time.UTC)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func dayFile(dir, day string) string { return filepath.Join(dir, "auth", "oauth", day) }

// lines reads a log file as JSON objects, failing on any line that is not
// one.
func lines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON (%v): %q", len(out)+1, err, sc.Text())
		}
		out = append(out, m)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Error("file does not end with a newline")
	}
	return out
}

// write writes r and fails the test if the log counted a failure.
func write(t *testing.T, l *audit.Log, r audit.Record) {
	t.Helper()
	before := l.Failures()
	l.Write(r)
	if l.Failures() != before {
		t.Fatal("Write failed")
	}
}

// utcLog returns a Log under dir whose days begin in UTC.
func utcLog(dir string, records *zap.Logger, now func() time.Time) *audit.Log {
	return audit.New(audit.Options{Dir: dir, Records: records, Now: now, Location: time.UTC})
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestRecordLine(t *testing.T) {
	base := []string{"hostname", "ip", "level", "name", "resp_code", "timestamp"}
	cases := []struct {
		name   string
		rec    audit.Record
		fields []string
	}{
		{"success", audit.Record{Name: "ci", Hostname: "api.example", IP: "192.0.2.1", Level: audit.LevelInfo, RespCode: 200}, base},
		{"error", audit.Record{Name: "ci", Hostname: "api.example", IP: "192.0.2.1", Level: audit.LevelError, RespCode: 401, Response: "invalid_client: client authentication failed"},
			append([]string{"response"}, base...)},
		{"empty values", audit.Record{Level: audit.LevelDebug}, base},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := utcLog(dir, nil, (&clock{t: t0}).Now)
			defer l.Close()
			write(t, l, c.rec)
			got := lines(t, dayFile(dir, "2025-06-01"))
			if len(got) != 1 {
				t.Fatalf("%d lines, want 1", len(got))
			}
			m := got[0]
			want := slices.Clone(c.fields)
			slices.Sort(want)
			if ks := keysOf(m); !slices.Equal(ks, want) {
				t.Errorf("fields %v, want %v", ks, want)
			}
			if m["timestamp"] != t0.Format(time.RFC3339Nano) || m["name"] != c.rec.Name || m["hostname"] != c.rec.Hostname ||
				m["ip"] != c.rec.IP || m["level"] != c.rec.Level || m["resp_code"] != float64(c.rec.RespCode) {
				t.Errorf("line %v does not match %+v", m, c.rec)
			}
			if c.rec.Response != "" && m["response"] != c.rec.Response {
				t.Errorf("response %v", m["response"])
			}
		})
	}
}

// TestHostnameCleaned: the hostname is the client's Host; a record keeps
// it as store.CleanHost does (one bounded printable word), in the file.
func TestHostnameCleaned(t *testing.T) {
	dir := t.TempDir()
	l := utcLog(dir, nil, (&clock{t: t0}).Now)
	defer l.Close()
	write(t, l, audit.Record{Name: "ci", Hostname: "evil\x1b[2J\nhost " + strings.Repeat("a", 1<<16), Level: audit.LevelInfo})
	got := lines(t, dayFile(dir, "2025-06-01"))
	h, _ := got[0]["hostname"].(string)
	if strings.ContainsAny(h, "\x1b\n ") || len(h) > store.MaxHostLength || !strings.HasPrefix(h, "evil?[2J?host?") {
		t.Errorf("hostname recorded as %q (%d bytes)", h[:min(len(h), 40)], len(h))
	}
}

func TestNextDayNewFile(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	l := utcLog(dir, nil, clk.Now)
	defer l.Close()
	write(t, l, audit.Record{Name: "day one", Level: audit.LevelInfo, RespCode: 200})
	clk.Advance(2 * time.Minute) // 00:01 the next day
	write(t, l, audit.Record{Name: "day two", Level: audit.LevelInfo, RespCode: 200})
	for day, name := range map[string]string{"2025-06-01": "day one", "2025-06-02": "day two"} {
		t.Run(day, func(t *testing.T) {
			got := lines(t, dayFile(dir, day))
			if len(got) != 1 || got[0]["name"] != name {
				t.Errorf("%s holds %v, want one line of %q", day, got, name)
			}
		})
	}
	if p := l.Path(clk.Now()); p != dayFile(dir, "2025-06-02") {
		t.Errorf("Path = %s", p)
	}
}

func TestConcurrentWritersDoNotInterleave(t *testing.T) {
	const goroutines, perGoroutine = 50, 100
	dir := t.TempDir()
	clk := &clock{t: t0.Add(-time.Hour)}
	// Two Logs on one directory, as two processes would have.
	logs := []*audit.Log{utcLog(dir, nil, clk.Now), utcLog(dir, nil, clk.Now)}
	pad := strings.Repeat("x", 512) // long lines make interleaving visible
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				for li, l := range logs {
					r := audit.Record{Name: fmt.Sprintf("g%d-i%d-l%d-%s", g, i, li, pad), Hostname: "h", IP: "192.0.2.1", Level: audit.LevelInfo, RespCode: 200}
					l.Write(r)
				}
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		if l.Failures() != 0 {
			t.Fatalf("%d failed writes", l.Failures())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got := lines(t, dayFile(dir, "2025-06-01"))
	if want := goroutines * perGoroutine * len(logs); len(got) != want {
		t.Fatalf("%d lines, want %d", len(got), want)
	}
	seen := make(map[string]bool, len(got))
	for _, m := range got {
		seen[m["name"].(string)] = true
	}
	if len(seen) != len(got) {
		t.Errorf("%d distinct records in %d lines", len(seen), len(got))
	}
}

func TestNilLogIsNoOp(t *testing.T) {
	var l *audit.Log
	l.Write(audit.Record{Name: "x"})
	if l.Failures() != 0 {
		t.Error("a nil Log counted a failure")
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}
}

func TestZapGetsSameRecords(t *testing.T) {
	recs := []audit.Record{
		{Name: "ci", Hostname: "api.example", IP: "192.0.2.1", Level: audit.LevelInfo, RespCode: 200},
		{Name: "ci", Hostname: "api.example", IP: "192.0.2.2", Level: audit.LevelError, RespCode: 401, Response: "invalid_client: client authentication failed"},
	}
	for _, withDir := range []bool{true, false} {
		t.Run(fmt.Sprintf("files=%v", withDir), func(t *testing.T) {
			dir := ""
			if withDir {
				dir = t.TempDir()
			}
			core, logs := observer.New(zapcore.DebugLevel)
			l := utcLog(dir, zap.New(core), (&clock{t: t0}).Now)
			defer l.Close()
			for _, r := range recs {
				write(t, l, r)
			}
			entries := logs.All()
			if len(entries) != len(recs) {
				t.Fatalf("%d zap entries, want %d", len(entries), len(recs))
			}
			var fileLines []map[string]any
			if withDir {
				fileLines = lines(t, dayFile(dir, "2025-06-01"))
			}
			for i, r := range recs {
				z := entries[i].ContextMap()
				if z["name"] != r.Name || z["hostname"] != r.Hostname || z["ip"] != r.IP || z["audit_level"] != r.Level ||
					z["resp_code"] != int64(r.RespCode) || z["response"] != r.Response {
					t.Errorf("zap entry %d = %v, want %+v", i, z, r)
				}
				if withDir {
					f := fileLines[i]
					if f["name"] != z["name"] || f["ip"] != z["ip"] || f["resp_code"] != float64(z["resp_code"].(int64)) {
						t.Errorf("file line %v and zap entry %v differ", f, z)
					}
				}
			}
		})
	}
}
