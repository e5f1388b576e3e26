package audit_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/audit"
)

// names returns the Name of each record, in order.
func names(recs []audit.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

// read calls Read and fails the test on an error.
func read(t *testing.T, l *audit.Log, day string, f audit.Filter, limit int) ([]audit.Record, bool, int) {
	t.Helper()
	recs, more, skipped, err := l.Read(day, f, limit)
	if err != nil {
		t.Fatalf("Read(%q, %+v, %d): %v", day, f, limit, err)
	}
	return recs, more, skipped
}

// appendRaw appends raw bytes to a day's file.
func appendRaw(t *testing.T, dir, day, raw string) {
	t.Helper()
	f, err := os.OpenFile(dayFile(dir, day), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(raw); err != nil {
		t.Fatal(err)
	}
}

func TestDays(t *testing.T) {
	if days, err := audit.New(audit.Options{}).Days(); err != nil || days != nil {
		t.Errorf("Days without a directory = %v, %v; want none", days, err)
	}
	var nilLog *audit.Log
	if days, err := nilLog.Days(); err != nil || days != nil {
		t.Errorf("Days of a nil Log = %v, %v; want none", days, err)
	}

	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 30, 12, 0, 0, 0, time.UTC)}
	l := utcLog(dir, nil, c.Now)
	defer l.Close()
	if days, err := l.Days(); err != nil || days != nil {
		t.Errorf("Days before any write = %v, %v; want none", days, err)
	}
	for range 3 { // 2026-01-30, 2026-01-31, 2026-02-01
		write(t, l, audit.Record{Name: "k", Level: audit.LevelInfo, RespCode: 200})
		c.Advance(24 * time.Hour)
	}
	// Not days: ignored.
	appendRaw(t, dir, "notes.txt", "x\n")
	if err := os.Mkdir(dayFile(dir, "2026-03-01"), 0o750); err != nil {
		t.Fatal(err)
	}
	days, err := l.Days()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"2026-02-01", "2026-01-31", "2026-01-30"}; !slices.Equal(days, want) {
		t.Errorf("Days = %v, want %v", days, want)
	}
}

func TestReadFilterNewestFirst(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 2, 3, 8, 0, 0, 0, time.UTC)}
	l := utcLog(dir, nil, c.Now)
	defer l.Close()
	recs := []audit.Record{
		{Name: "alpha", ClientID: "cid-a", Hostname: "h", IP: "192.0.2.1", Level: audit.LevelInfo, RespCode: 200},
		{Name: "beta", Hostname: "h", IP: "192.0.2.2", Level: audit.LevelError, RespCode: 401, Response: "invalid_client"},
		{Name: "", ClientID: "cid-unknown", Hostname: "h", IP: "192.0.2.3", Level: audit.LevelError, RespCode: 401, Response: "invalid_client"},
		{Name: "alpha", ClientID: "cid-a", Hostname: "h", IP: "192.0.2.1", Level: audit.LevelDebug, RespCode: 200},
		{Name: "beta", Hostname: "h", IP: "192.0.2.2", Level: audit.LevelInfo, RespCode: 200},
	}
	for _, r := range recs {
		write(t, l, r)
		c.Advance(time.Minute)
	}
	day := "2026-02-03"

	got, more, skipped := read(t, l, day, audit.Filter{}, 0)
	if more || skipped != 0 || len(got) != len(recs) {
		t.Fatalf("all: %d records, more %v, skipped %d; want %d, false, 0", len(got), more, skipped, len(recs))
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Timestamp.Before(got[i-1].Timestamp) {
			t.Errorf("record %d (%v) is not older than record %d (%v)", i, got[i].Timestamp, i-1, got[i-1].Timestamp)
		}
	}
	if got[0] != withTimestamp(recs[4], got[0].Timestamp) || got[4] != withTimestamp(recs[0], got[4].Timestamp) {
		t.Errorf("newest = %+v, oldest = %+v; want the last and the first written", got[0], got[4])
	}

	for _, tc := range []struct {
		f    audit.Filter
		want []string
	}{
		{audit.Filter{Level: audit.LevelError}, []string{"", "beta"}},
		{audit.Filter{Level: "info"}, []string{"beta", "alpha"}},
		{audit.Filter{Level: audit.LevelDebug}, []string{"alpha"}},
		{audit.Filter{Key: "alpha"}, []string{"alpha", "alpha"}},
		{audit.Filter{Key: "cid-a"}, []string{"alpha", "alpha"}},
		{audit.Filter{Key: "cid-unknown"}, []string{""}},
		{audit.Filter{Key: "alph"}, nil},
		{audit.Filter{Key: "beta", Level: audit.LevelError}, []string{"beta"}},
		{audit.Filter{Key: "alpha", Level: audit.LevelError}, nil},
	} {
		got, more, _ := read(t, l, day, tc.f, 0)
		if more || !slices.Equal(names(got), tc.want) {
			t.Errorf("filter %+v: %q (more %v), want %q", tc.f, names(got), more, tc.want)
		}
	}
}

func withTimestamp(r audit.Record, ts time.Time) audit.Record {
	r.Timestamp = ts
	return r
}

func TestReadLimit(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 2, 3, 8, 0, 0, 0, time.UTC)}
	l := utcLog(dir, nil, c.Now)
	defer l.Close()
	for i := range 1005 {
		level := audit.LevelInfo
		if i%2 == 1 {
			level = audit.LevelError
		}
		write(t, l, audit.Record{Name: fmt.Sprint("k", i), Level: level, RespCode: 200})
		c.Advance(time.Second)
	}
	const day = "2026-02-03"

	got, more, _ := read(t, l, day, audit.Filter{}, 3)
	if want := []string{"k1004", "k1003", "k1002"}; !more || !slices.Equal(names(got), want) {
		t.Errorf("limit 3: %q, more %v; want %q, true", names(got), more, want)
	}
	got, more, _ = read(t, l, day, audit.Filter{Level: audit.LevelError}, 2)
	if want := []string{"k1003", "k1001"}; !more || !slices.Equal(names(got), want) {
		t.Errorf("errors, limit 2: %q, more %v; want %q, true", names(got), more, want)
	}
	// 502 errors: k1, k3, ... k1003.
	got, more, _ = read(t, l, day, audit.Filter{Level: audit.LevelError}, 501)
	if !more || len(got) != 501 || got[500].Name != "k3" {
		t.Errorf("errors, limit 501: %d records, last %q, more %v; want 501, k3, true", len(got), got[len(got)-1].Name, more)
	}
	got, more, _ = read(t, l, day, audit.Filter{Level: audit.LevelError}, 502)
	if more || len(got) != 502 || got[501].Name != "k1" {
		t.Errorf("errors, limit 502: %d records, last %q, more %v; want 502, k1, false", len(got), got[len(got)-1].Name, more)
	}
	got, more, _ = read(t, l, day, audit.Filter{}, 0) // default: 1000
	if !more || len(got) != 1000 || got[0].Name != "k1004" || got[999].Name != "k5" {
		t.Errorf("default limit: %d records (%s..%s), more %v; want 1000 (k1004..k5), true",
			len(got), got[0].Name, got[len(got)-1].Name, more)
	}
	got, more, _ = read(t, l, day, audit.Filter{}, 1005)
	if more || len(got) != 1005 {
		t.Errorf("limit 1005: %d records, more %v; want 1005, false", len(got), more)
	}
}

func TestReadBadDays(t *testing.T) {
	dir := t.TempDir()
	l := utcLog(dir, nil, func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	defer l.Close()
	write(t, l, audit.Record{Name: "k", Level: audit.LevelInfo})
	// A file outside the log a path escape would reach.
	if err := os.WriteFile(dir+"/x", []byte(`{"timestamp":"2026-01-01T00:00:00Z","name":"escaped"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, day := range []string{
		"", "../x", "../../x", "..", "2026-1-1", "2026-01-1", "26-01-01", "2026/01/01", "2026-01-01/",
		"2026-01-01/../../../x", "2026-01-01\x00", " 2026-01-01", "2026-01-01 ", "2026-13-01",
		"2026-02-30", "2026-00-10", "2026-01-00", "2026-01-32", "20260101", "2026-01-0a", "+026-01-01",
		"２026-01-01",
	} {
		recs, more, skipped, err := l.Read(day, audit.Filter{}, 0)
		if err == nil || recs != nil || more || skipped != 0 {
			t.Errorf("Read(%q) = %d records, %v, %d, %v; want an error and nothing", day, len(recs), more, skipped, err)
		}
	}
	// Leap day is a day.
	if _, _, _, err := l.Read("2028-02-29", audit.Filter{}, 0); err != nil {
		t.Errorf("Read(2028-02-29): %v", err)
	}
	// Without files the day is still validated.
	if _, _, _, err := audit.New(audit.Options{}).Read("../x", audit.Filter{}, 0); err == nil {
		t.Error("Read(../x) without a directory: no error")
	}
}

func TestReadMissingAndEmpty(t *testing.T) {
	for name, l := range map[string]*audit.Log{
		"no dir":       audit.New(audit.Options{}),
		"nil":          nil,
		"missing file": utcLog(t.TempDir(), nil, nil),
	} {
		recs, more, skipped, err := l.Read("2026-01-01", audit.Filter{}, 0)
		if err != nil || len(recs) != 0 || more || skipped != 0 {
			t.Errorf("%s: %d records, %v, %d, %v; want an empty day", name, len(recs), more, skipped, err)
		}
	}
}

func TestReadSkipsMalformedAndLongLines(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 2, 3, 8, 0, 0, 0, time.UTC)}
	l := utcLog(dir, nil, c.Now)
	defer l.Close()
	const day = "2026-02-03"
	write(t, l, audit.Record{Name: "first", Level: audit.LevelInfo})
	appendRaw(t, dir, day, "not json\n")
	appendRaw(t, dir, day, "\n   \n") // blank: ignored, not counted
	appendRaw(t, dir, day, `{"name":"no timestamp"}`+"\n")
	appendRaw(t, dir, day, `{"timestamp":"2026-02-03T08:00:30Z","name":"long","response":"`+strings.Repeat("x", 70<<10)+`"}`+"\n")
	fits := `{"timestamp":"2026-02-03T08:00:40Z","name":"fits","level":"INFO","response":"`
	fits += strings.Repeat("y", 64<<10-len(fits)-2) + `"}`
	if len(fits) != 64<<10 {
		t.Fatalf("fits is %d bytes", len(fits))
	}
	appendRaw(t, dir, day, fits+"\n")
	c.Advance(time.Minute)
	write(t, l, audit.Record{Name: "second", Level: audit.LevelError})
	c.Advance(time.Minute)
	write(t, l, audit.Record{Name: "third", Level: audit.LevelInfo})
	appendRaw(t, dir, day, `{"timestamp":"2026-02-03T09:00:00Z","name":"torn"`) // no newline, cut short

	got, more, skipped := read(t, l, day, audit.Filter{}, 0)
	if want := []string{"third", "second", "fits", "first"}; more || skipped != 4 || !slices.Equal(names(got), want) {
		t.Errorf("got %q, more %v, skipped %d; want %q, false, 4", names(got), more, skipped, want)
	}
	// Too long lines are counted whatever the filter; malformed ones only
	// when they are among the lines examined (the filter's candidates).
	got, _, skipped = read(t, l, day, audit.Filter{Level: audit.LevelError}, 0)
	if !slices.Equal(names(got), []string{"second"}) || skipped != 1 {
		t.Errorf("errors: %q, skipped %d; want [second], 1", names(got), skipped)
	}
	// A last line without its newline is read when it is whole.
	appendRaw(t, dir, day, "\n"+`{"timestamp":"2026-02-03T09:01:00Z","name":"last","level":"INFO"}`)
	got, _, skipped = read(t, l, day, audit.Filter{}, 1)
	if !slices.Equal(names(got), []string{"last"}) || skipped != 1 {
		t.Errorf("unterminated last line: %q, skipped %d; want [last], 1", names(got), skipped)
	}
}

func TestReadBigFileReadsItsEnd(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 2, 3, 8, 0, 0, 0, time.UTC)}
	l := utcLog(dir, nil, c.Now)
	defer l.Close()
	const day = "2026-02-03"
	write(t, l, audit.Record{Name: "oldest", Level: audit.LevelInfo})
	// One line bigger than the read limit: the read starts inside it, so
	// it is neither a record nor a skipped line.
	f, err := os.OpenFile(dayFile(dir, day), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("z"), 1<<20)
	for range audit.MaxReadBytes >> 20 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		c.Advance(time.Second)
		write(t, l, audit.Record{Name: n, Level: audit.LevelInfo})
	}
	got, more, skipped := read(t, l, day, audit.Filter{}, 0)
	if want := []string{"c", "b", "a"}; !more || skipped != 0 || !slices.Equal(names(got), want) {
		t.Errorf("got %q, more %v, skipped %d; want %q, true (truncated), 0", names(got), more, skipped, want)
	}

	// When the last MaxReadBytes begin exactly at a line, that line is read
	// whole: a record line, then MaxReadBytes made of a filler line (too long:
	// skipped and counted) and a record line.
	if err := os.Truncate(dayFile(dir, day), 0); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, dir, day, `{"timestamp":"2026-02-03T07:00:00Z","name":"before","level":"INFO"}`+"\n")
	rec := `{"timestamp":"2026-02-03T07:00:01Z","name":"edge","level":"INFO"}` + "\n"
	f, err = os.OpenFile(dayFile(dir, day), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fill := audit.MaxReadBytes - len(rec) - 1
	if _, err := f.Write(append(bytes.Repeat([]byte("q"), fill), '\n')); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(rec); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, more, skipped = read(t, l, day, audit.Filter{}, 0)
	if want := []string{"edge"}; !more || skipped != 1 || !slices.Equal(names(got), want) {
		t.Errorf("at a line start: got %q, more %v, skipped %d; want %q, true, 1", names(got), more, skipped, want)
	}
}

// BenchmarkReadFullDay reads a day as big as Read reads (MaxReadBytes of
// records), filtered, as the log page does.
func BenchmarkReadFullDay(b *testing.B) {
	dir := b.TempDir()
	l := audit.New(audit.Options{Dir: dir, Location: time.UTC})
	day := "2026-02-03"
	if err := os.MkdirAll(filepath.Dir(dayFile(dir, day)), 0o755); err != nil {
		b.Fatal(err)
	}
	line := []byte(`{"timestamp":"2026-02-03T07:00:00Z","name":"billing","client_id":"tgc_0123456789abcdef","hostname":"api.example.com","ip":"203.0.113.7","level":"INFO","resp_code":200}` + "\n")
	buf := bytes.Repeat(line, audit.MaxReadBytes/len(line))
	if err := os.WriteFile(dayFile(dir, day), buf, 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, _, err := l.Read(day, audit.Filter{Level: audit.LevelError}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
